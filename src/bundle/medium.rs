//! Court media: the profiles that say what a court takes (formats, size per file, names, whether
//! custody records may travel), the preflight that checks a planned medium against one before
//! anything is written, the index page that plays each exhibit in a browser, and the read-back
//! that proves what was written.

use std::path::Path;

use anyhow::Result;
use serde::Deserialize;

use crate::error;
use crate::media::probe::MediaFacts;

/// A court's rules for media, as a YAML file an agency can edit (docs/media.md).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Extensions (lowercase, no dot) of the exhibit files the court takes; `*`: any.
    pub exhibit_formats: Vec<String>,
    /// Whether the native original travels whatever its format (beside a playable copy).
    pub native_originals: bool,
    /// Whether the custody records travel: the bag's manifests, ledger excerpt, verifier,
    /// README, the HTML report, the index page and SHA256SUMS.txt.
    pub custody_files: bool,
    /// The largest file the court (or the medium's filesystem) takes, in bytes.
    pub max_file_size: u64,
    /// Which names are allowed.
    pub filesystem: Filesystem,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Filesystem {
    Fat32,
    Iso9660,
}

impl Filesystem {
    /// The largest file the filesystem holds: FAT32's 4 GiB − 1; ISO 9660 level 3 files of
    /// several extents are larger than any medium.
    pub fn largest_file(self) -> u64 {
        match self {
            Filesystem::Fat32 => u32::MAX as u64,
            Filesystem::Iso9660 => u64::MAX,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Filesystem::Fat32 => "fat32",
            Filesystem::Iso9660 => "iso9660",
        }
    }
}

const BUILT_IN: [(&str, &str); 3] = [
    ("court", include_str!("profiles/court.yaml")),
    ("d-oregon", include_str!("profiles/d-oregon.yaml")),
    ("investigator", include_str!("profiles/investigator.yaml")),
];

impl Profile {
    /// A built-in profile by name, or a profile file; with the SHA-256 of its text (recorded).
    pub fn load(name: &str) -> Result<(Profile, String)> {
        let (text, source) = match BUILT_IN.iter().find(|(n, _)| *n == name) {
            Some((_, t)) => (t.to_string(), format!("the built-in profile {name}")),
            None if name.ends_with(".yaml") || name.ends_with(".yml") || name.contains('/') => {
                let text = std::fs::read_to_string(name)
                    .map_err(|e| error::input(format!("cannot read the profile {name}: {e}")))?;
                (text, format!("profile {name}"))
            }
            None => {
                let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
                return Err(error::input(format!(
                    "no profile {name:?}: use one of {}, or a profile file (FILE.yaml, see docs/media.md)",
                    names.join(", ")
                )));
            }
        };
        let profile: Profile = serde_yaml_ng::from_str(&text).map_err(|e| {
            let at = e.location().map(|l| format!(" at line {} column {}", l.line(), l.column())).unwrap_or_default();
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
            error::input(format!("{source}{at}: {msg}"))
        })?;
        if let Some(bad) = profile
            .exhibit_formats
            .iter()
            .find(|f| *f != "*" && (f.is_empty() || !f.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())))
        {
            return Err(error::input(format!(
                "{source}: exhibit_formats holds {bad:?}: give extensions in lowercase without the dot (mp4, wav), or \"*\" for any"
            )));
        }
        if profile.max_file_size == 0 {
            return Err(error::input(format!("{source}: max_file_size must be more than 0 bytes")));
        }
        Ok((profile, hex::encode(crate::digest::sha256(text.as_bytes()))))
    }

    /// Whether the court takes a file with this name as an exhibit.
    pub fn takes(&self, name: &str) -> bool {
        let ext = extension(name);
        self.exhibit_formats.iter().any(|f| f == "*" || f.eq_ignore_ascii_case(&ext))
    }
}

/// The lowercase extension of a file name ("" without one).
pub fn extension(name: &str) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => String::new(),
    }
}

/// Whether a file has video or audio to play (a still picture does not).
pub fn is_audio_video(name: &str, media: Option<&MediaFacts>) -> bool {
    if matches!(extension(name).as_str(), "png" | "jpg" | "jpeg" | "bmp" | "tif" | "tiff" | "gif") {
        return false;
    }
    media.is_some_and(|m| m.streams.iter().any(|s| s.kind == "video" || s.kind == "audio"))
}

/// Whether the file plays both on an offline Windows court PC without extra software and in
/// the medium's index page in any browser: MP4 with H.264 and AAC or MP3; M4A; MP3; WAV with
/// PCM. (Windows also plays AVI and MPEG program streams, but no browser does: those get a
/// playback copy in MP4.)
pub fn plays_natively(name: &str, media: Option<&MediaFacts>) -> bool {
    let Some(m) = media else { return false };
    let (video, audio): (&[&str], &[&str]) = match extension(name).as_str() {
        "mp4" | "m4v" | "m4a" => (&["h264"], &["aac", "mp3"]),
        "mp3" => (&[], &["mp3"]),
        "wav" => (&[], &["pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_u8", "pcm_mulaw", "pcm_alaw", "pcm_f32le"]),
        _ => return false,
    };
    let mut any = false;
    for s in &m.streams {
        let ok = match s.kind.as_str() {
            "video" => video.contains(&s.codec.as_str()),
            "audio" => audio.contains(&s.codec.as_str()),
            _ => true,
        };
        if !ok {
            return false;
        }
        any |= s.kind == "video" || s.kind == "audio";
    }
    any
}

/// Whether a stream copy into MP4 plays on a court PC: H.264 video, and AAC or MP3 audio or
/// none (a raw `.h264`, H.264 in MPEG-TS, AVI or Matroska, a Dahua `.dav` without G.711 audio).
pub fn rewraps_to_playable(m: &MediaFacts) -> bool {
    let av: Vec<_> = m.streams.iter().filter(|s| s.kind == "video" || s.kind == "audio").collect();
    av.iter().any(|s| s.kind == "video")
        && av.iter().all(|s| if s.kind == "video" { s.codec == "h264" } else { s.codec == "aac" || s.codec == "mp3" })
}

/// Why `name` cannot be a file name on `fs`, if it cannot.
pub fn bad_name(name: &str, fs: Filesystem) -> Option<String> {
    if let Some(c) = name.chars().find(|c| c.is_control() || "\"*:<>?\\|".contains(*c)) {
        return Some(format!("the character {c:?}"));
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return Some("a trailing dot or space".into());
    }
    let stem = name.split('.').next().unwrap_or(name).trim_end().to_ascii_uppercase();
    let reserved = ["CON", "PRN", "AUX", "NUL"].contains(&stem.as_str())
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit()
            && stem.as_bytes()[3] != b'0');
    if reserved {
        return Some(format!("the reserved device name {stem}"));
    }
    if fs == Filesystem::Iso9660 {
        // Joliet holds UCS-2: nothing outside the Basic Multilingual Plane, and no `;`.
        if let Some(c) = name.chars().find(|c| *c as u32 > 0xFFFF || *c == ';') {
            return Some(format!("the character {c:?}, which Joliet names cannot hold"));
        }
    }
    let limit = match fs {
        Filesystem::Fat32 => 255,
        // Joliet's names: 64 UCS-2 characters.
        Filesystem::Iso9660 => 64,
    };
    let units = name.encode_utf16().count();
    if units > limit {
        return Some(format!("{units} characters (at most {limit})"));
    }
    None
}

/// Whether a file is a program a court PC would run: by its extension, or by its first bytes
/// (a Windows or Linux executable, a script).
pub fn is_executable(name: &str, head: &[u8]) -> bool {
    const EXTENSIONS: [&str; 14] =
        ["exe", "bat", "cmd", "com", "msi", "scr", "vbs", "vbe", "js", "ps1", "jar", "sh", "dll", "lnk"];
    EXTENSIONS.contains(&extension(name).as_str())
        || head.starts_with(b"MZ")
        || head.starts_with(b"\x7fELF")
        || head.starts_with(b"#!")
}

/// HTML text.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A relative path as a URL path (each component percent-encoded where needed).
fn href(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One exhibit file on the index page.
pub struct IndexEntry<'a> {
    pub item: &'a str,
    pub exhibit: String,
    pub name: &'a str,
    pub path: &'a str,
    pub sha256: &'a str,
    pub size: u64,
    pub origin: String,
    pub lineage: String,
    pub playable: bool,
    pub audio_only: bool,
    pub picture: bool,
    /// Where a file that does not play in a browser has its playable copy on the medium: the
    /// copy's item and path, or each part's, in order, when the copy was split.
    pub played_by: Vec<(String, String)>,
    /// Whether that copy was re-encoded (else its streams were copied unchanged).
    pub re_encoded: bool,
}

/// `(part, of)` when `name` is a part of a split recording (`NAME_part2of3.mp4`).
pub fn part_of(name: &str) -> Option<(usize, usize)> {
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    let (_, tail) = stem.rsplit_once("_part")?;
    let (k, n) = tail.split_once("of")?;
    Some((k.parse().ok()?, n.parse().ok()?))
}

/// The medium's start page: opens in any browser from the disc or drive, lists each exhibit
/// with its hash, origin and place in the chain, and plays what a browser plays.
pub fn index_html(label: &str, case: &str, formats: &[String], head: &str, entries: &[IndexEntry]) -> String {
    let mut h = String::new();
    h.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>body{{font-family:sans-serif;max-width:62em;margin:2em auto}}code{{font-size:85%;word-break:break-all}}section{{border-top:1px solid #999;padding:0.5em 0}}video,img{{max-width:100%}}</style></head><body>\n<h1>{}</h1>\n<p>Case {}. Formats on this medium: {}. The custody report is <a href=\"data/report/report.pdf\">data/report/report.pdf</a>. Ledger head <code>{}</code>. Every file's SHA-256 is listed in SHA256SUMS.txt (check it with <code>sha256sum -c SHA256SUMS.txt</code>).</p>\n",
        esc(label),
        esc(label),
        esc(case),
        esc(&formats.join(", ")),
        esc(head)
    ));
    for e in entries {
        h.push_str(&format!(
            "<section><h2>{} — {}/{}{}</h2>\n<p>File <a href=\"{}\">{}</a>, {} bytes<br>SHA-256 <code>{}</code><br>{}<br>Chain: {}</p>\n",
            esc(e.item),
            esc(&e.exhibit),
            esc(e.name),
            part_of(e.name).map(|(k, n)| format!(" (part {k} of {n})")).unwrap_or_default(),
            href(e.path),
            esc(e.path),
            e.size,
            esc(e.sha256),
            esc(&e.origin),
            esc(&e.lineage)
        ));
        if e.playable && e.audio_only {
            h.push_str(&format!("<audio controls preload=\"metadata\" src=\"{}\"></audio>\n", href(e.path)));
        } else if e.playable {
            h.push_str(&format!(
                "<video controls preload=\"metadata\" width=\"640\" src=\"{}\"></video>\n",
                href(e.path)
            ));
        } else if e.picture {
            h.push_str(&format!("<img alt=\"{}\" src=\"{}\">\n", esc(e.name), href(e.path)));
        } else if let [(item, path)] = e.played_by.as_slice() {
            h.push_str(&format!(
                "<p>This original plays on no court PC as it is: play its copy {}, <a href=\"{}\">{}</a> ({}).</p>\n",
                esc(item),
                href(path),
                esc(path),
                if e.re_encoded {
                    "re-encoded to H.264 so that any PC and browser plays it; the original beside it is the evidence"
                } else {
                    "its streams copied unchanged"
                }
            ));
        } else if !e.played_by.is_empty() {
            let n = e.played_by.len();
            let links: Vec<String> = e
                .played_by
                .iter()
                .enumerate()
                .map(|(k, (item, path))| {
                    format!(
                        "<li>part {} of {n}: {}, <a href=\"{}\">{}</a></li>",
                        k + 1,
                        esc(item),
                        href(path),
                        esc(path)
                    )
                })
                .collect();
            h.push_str(&format!(
                "<p>This original plays on no court PC as it is: play its copy, in {n} parts cut at keyframes (its streams copied unchanged, each part under the court's size limit):</p><ol>{}</ol>\n",
                links.concat()
            ));
        }
        h.push_str("</section>\n");
    }
    h.push_str("</body></html>\n");
    h
}

/// Reads every written file back from the medium and compares its SHA-256 with what was meant
/// to be written: the files that differ or cannot be read, each with why.
pub fn read_back(dir: &Path, files: &[(String, String, u64)]) -> Vec<String> {
    let mut bad = Vec::new();
    for (rel, sha, size) in files {
        let path = dir.join(rel);
        // What was just written is still in the page cache: drop it (the file was synced), so
        // the bytes compared come from the medium, not from memory.
        if let Ok(f) = std::fs::File::open(&path) {
            use std::os::fd::AsRawFd;
            // SAFETY: a valid descriptor; the advice changes no data.
            unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
        match std::fs::File::open(&path).and_then(sha256_of) {
            Ok((got, n)) if &got == sha && n == *size => {}
            Ok((got, n)) => {
                bad.push(format!("{rel}: read back {n} bytes with SHA-256 {got}, written {size} bytes with {sha}"))
            }
            Err(e) => bad.push(format!("{rel}: cannot be read back ({e})")),
        }
    }
    bad
}

/// The SHA-256 (hex) and length of everything `file` reads.
fn sha256_of(mut file: std::fs::File) -> std::io::Result<(String, u64)> {
    use std::io::Read;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = file.read(&mut buf)?;
        if k == 0 {
            break;
        }
        ctx.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(ctx.finish()), n))
}
