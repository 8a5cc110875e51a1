//! The fonts custody sets text in (the bundle report, caption banners, review sheets): read
//! from their Debian packages' paths, never from whatever fontconfig finds, so every machine sets
//! the same text the same way. Each character takes the first font of its chain that has it:
//! Noto Sans (Latin with every accent, Cyrillic, Greek), then DejaVu Sans (symbols, arrows), then
//! Noto Sans CJK (Chinese, Japanese, Korean); DejaVu Sans Mono first for hashes. A file is read
//! once per process and kept (a batch job writes many reports and stills).

use std::sync::OnceLock;

use anyhow::{Result, anyhow};

/// Where each font comes from: the Debian package, the file, the face in it.
const FILES: [(&str, &str, u32); 8] = [
    ("fonts-noto-core", "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf", 0),
    ("fonts-noto-core", "/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf", 0),
    ("fonts-dejavu-core", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 0),
    ("fonts-dejavu-core", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", 0),
    ("fonts-dejavu-core", "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf", 0),
    ("fonts-noto-cjk", "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 0),
    ("fonts-noto-cjk", "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc", 0),
    ("fonts-dejavu-core", "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf", 0),
];
pub const NOTO: usize = 0;
pub const NOTO_BOLD: usize = 1;
pub const DEJAVU: usize = 2;
pub const DEJAVU_BOLD: usize = 3;
pub const MONO: usize = 4;
pub const CJK: usize = 5;
pub const CJK_BOLD: usize = 6;
pub const COUNT: usize = FILES.len();

/// The typefaces of custody's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Sans,
    Bold,
    Mono,
}

impl Family {
    /// The fonts tried for each character, in order.
    pub fn chain(self) -> &'static [usize] {
        match self {
            Family::Sans => &[NOTO, DEJAVU, CJK],
            Family::Bold => &[NOTO_BOLD, DEJAVU_BOLD, CJK_BOLD],
            Family::Mono => &[MONO, NOTO, DEJAVU, CJK],
        }
    }

    /// The font that shows a replacement mark for a character no font of the chain has.
    pub fn replacement(self) -> usize {
        if self == Family::Bold { DEJAVU_BOLD } else { DEJAVU }
    }
}

/// The large CJK faces are loaded only when a character needs them.
pub fn is_cjk(font: usize) -> bool {
    font == CJK || font == CJK_BOLD
}

static DATA: [OnceLock<Result<&'static [u8], String>>; COUNT] = [const { OnceLock::new() }; COUNT];

/// Font `i`'s bytes and face index; a missing file names the package to install.
pub fn data(i: usize) -> Result<(&'static [u8], u32)> {
    let (package, path, index) = FILES[i];
    let loaded = DATA[i].get_or_init(|| {
        std::fs::read(path).map(|d| &*d.leak()).map_err(|e| {
            format!("the font {path} cannot be read ({e}): install the Debian package {package} (bins/setup does)")
        })
    });
    loaded.as_ref().map(|d| (*d, index)).map_err(|e| anyhow!("{e}"))
}

/// A font file that is there but that custody cannot use.
pub fn unusable(i: usize) -> anyhow::Error {
    let (package, path, _) = FILES[i];
    anyhow!("{path} is not a font custody can use: reinstall the Debian package {package}")
}

/// Combining marks stay in the font of the character they sit on.
pub fn combining(c: char) -> bool {
    matches!(c as u32, 0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

/// Splits `text` into pieces each set in one font of `family`'s chain: the first that has
/// the character (`has(font, c)`); None for a character no font has.
pub fn split(
    text: &str,
    family: Family,
    has: &mut dyn FnMut(usize, char) -> Result<bool>,
) -> Result<Vec<(Option<usize>, String)>> {
    let mut pieces: Vec<(Option<usize>, String)> = Vec::new();
    for c in text.chars() {
        if combining(c)
            && let Some((_, s)) = pieces.last_mut()
        {
            s.push(c);
            continue;
        }
        let mut pick = None;
        for &i in family.chain() {
            if is_cjk(i) && c.is_ascii() {
                continue;
            }
            if has(i, c)? {
                pick = Some(i);
                break;
            }
        }
        match pieces.last_mut() {
            Some((f, s)) if *f == pick => s.push(c),
            _ => pieces.push((pick, c.to_string())),
        }
    }
    Ok(pieces)
}
