//! The report's page layout, over krilla: headings kept with what follows them, wrapped
//! paragraphs of mixed styles, tables that break between rows (a row taller than what is left
//! of a page continues on the next, its header repeated), pictures, and a footer with the page
//! number. Text is shaped with rustybuzz and every character is set in the first font of its
//! style's chain that has it (Noto Sans, then DejaVu Sans, then Noto Sans CJK; DejaVu Sans Mono
//! first for hashes), so any name prints; the fonts are read from their Debian packages' paths,
//! never from whatever fontconfig finds. Hashes and numbers are never broken inside: a word wider
//! than its column is cut into fixed groups of 8 characters. krilla embeds the subset fonts and
//! validates the PDF/A level asked for, refusing to write a file that breaks it.

use std::ops::Range;
use std::sync::OnceLock;

use anyhow::{Context as _, Result, anyhow};
use krilla::color::{luma, rgb};
use krilla::configure::{Archival, ConfigurationBuilder, Validator};
use krilla::embed::{AssociationKind, EmbeddedFile, MimeType};
use krilla::geom::{PathBuilder, Point, Rect, Size};
use krilla::image::{BitsPerComponent, CustomImage, Image, ImageColorspace};
use krilla::metadata::{DateTime, Metadata};
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::text::{Font, GlyphId, KrillaGlyph};
use krilla::{Document, SerializeSettings};

use crate::fonts::{self, Family};

/// The page size: the agency's setting (`init --paper`), or `package --paper`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Paper {
    /// US Letter, 8.5 × 11 in
    Letter,
    /// ISO A4, 210 × 297 mm
    A4,
}

impl Paper {
    pub fn name(self) -> &'static str {
        match self {
            Paper::Letter => "letter",
            Paper::A4 => "a4",
        }
    }

    pub fn parse(s: &str) -> Option<Paper> {
        match s.to_ascii_lowercase().as_str() {
            "letter" => Some(Paper::Letter),
            "a4" => Some(Paper::A4),
            _ => None,
        }
    }

    fn size(self) -> (f32, f32) {
        match self {
            Paper::Letter => (612.0, 792.0),
            Paper::A4 => (595.276, 841.89),
        }
    }
}

/// The PDF/A conformance level the report is written to (krilla refuses to write a file that
/// breaks it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Pdfa {
    /// PDF/A-1b (PDF 1.4): for archives and validators that take only part 1
    #[value(name = "1b")]
    A1b,
    /// PDF/A-2b (PDF 1.7): the default
    #[value(name = "2b")]
    A2b,
    /// PDF/A-3b: as 2b, with the bundle's ledger excerpt and item list attached inside the PDF
    #[value(name = "3b")]
    A3b,
}

impl Pdfa {
    pub fn name(self) -> &'static str {
        match self {
            Pdfa::A1b => "PDF/A-1b",
            Pdfa::A2b => "PDF/A-2b",
            Pdfa::A3b => "PDF/A-3b",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fonts.

/// One loaded face: its shaper face and krilla font, over bytes kept for the process's life.
struct Face {
    shaper: rustybuzz::Face<'static>,
    font: Font,
    upem: f32,
}

static FACES: [OnceLock<Result<Face, String>>; fonts::COUNT] = [const { OnceLock::new() }; fonts::COUNT];

fn face(i: usize) -> Result<&'static Face> {
    let loaded = FACES[i].get_or_init(|| {
        let (data, index) = fonts::data(i).map_err(|e| format!("{e:#}"))?;
        let unusable = || format!("{:#}", fonts::unusable(i));
        let shaper = rustybuzz::Face::from_slice(data, index).ok_or_else(unusable)?;
        let font = Font::new(krilla::Data::from(data), index).ok_or_else(unusable)?;
        let upem = shaper.units_per_em() as f32;
        Ok(Face { shaper, font, upem })
    });
    loaded.as_ref().map_err(|e| anyhow!("{e}"))
}

/// A piece of shaped text in one font: its glyphs (advances in ems) and the text they show.
#[derive(Clone)]
struct Run {
    face: usize,
    text: String,
    glyphs: Vec<KrillaGlyph>,
    /// The advance of the whole run, in ems.
    width: f32,
}

/// `text` shaped in `family`, split where the font changes.
fn shape(text: &str, family: Family) -> Result<Vec<Run>> {
    let pieces = fonts::split(text, family, &mut |i, c| Ok(face(i)?.shaper.glyph_index(c).is_some()))?;
    let mut runs = Vec::new();
    for (pick, piece) in pieces {
        match pick {
            Some(i) => runs.push(shape_run(i, &piece, &piece)?),
            // No font has it: a replacement mark is shown, and the text behind it (what copying
            // or extracting the text gives) is still the character itself.
            None => {
                for c in piece.chars() {
                    runs.push(shape_run(family.replacement(), "\u{FFFD}", &c.to_string())?);
                }
            }
        }
    }
    Ok(runs)
}

/// `shown` shaped in one face, its glyphs standing for `text` (the same string, except where a
/// replacement mark stands for a character no font has).
fn shape_run(i: usize, shown: &str, text: &str) -> Result<Run> {
    let f = face(i)?;
    let mut buffer = rustybuzz::UnicodeBuffer::new();
    buffer.push_str(shown);
    buffer.guess_segment_properties();
    buffer.set_direction(rustybuzz::Direction::LeftToRight);
    let out = rustybuzz::shape(&f.shaper, &[], buffer);
    let infos = out.glyph_infos();
    let positions = out.glyph_positions();
    let mut glyphs = Vec::with_capacity(infos.len());
    let mut width = 0.0;
    for (k, (info, pos)) in infos.iter().zip(positions).enumerate() {
        let start = info.cluster as usize;
        let end = infos[k + 1..].iter().map(|n| n.cluster as usize).find(|&c| c != start).unwrap_or(shown.len());
        let range: Range<usize> = if shown == text { start..end } else { 0..text.len() };
        let adv = pos.x_advance as f32 / f.upem;
        width += adv;
        glyphs.push(KrillaGlyph::new(
            GlyphId::new(info.glyph_id),
            adv,
            pos.x_offset as f32 / f.upem,
            pos.y_offset as f32 / f.upem,
            pos.y_advance as f32 / f.upem,
            range,
            None,
        ));
    }
    Ok(Run { face: i, text: text.to_owned(), glyphs, width })
}

// ---------------------------------------------------------------------------------------------
// Styles and words.

/// How a span of text is set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Style {
    pub family: Family,
    pub size: f32,
    pub color: (u8, u8, u8),
}

impl Style {
    pub const BODY: Style = Style { family: Family::Sans, size: 9.5, color: (0, 0, 0) };
    pub const BOLD: Style = Style { family: Family::Bold, size: 9.5, color: (0, 0, 0) };
    /// Values in the report's fact tables.
    pub const VALUE: Style = Style { family: Family::Sans, size: 8.5, color: (0, 0, 0) };
    pub const SMALL: Style = Style { family: Family::Sans, size: 8.0, color: (0, 0, 0) };
    pub const SMALL_BOLD: Style = Style { family: Family::Bold, size: 8.0, color: (0, 0, 0) };
    /// Hashes, commands and file names: 64 hex digits fit a 300 pt column.
    pub const MONO: Style = Style { family: Family::Mono, size: 7.2, color: (0, 0, 0) };
    pub const WARNING: Style = Style { family: Family::Bold, size: 9.5, color: (176, 0, 0) };
    const FOOTER: Style = Style { family: Family::Sans, size: 7.5, color: (80, 80, 80) };

    fn leading(self) -> f32 {
        self.size * 1.32
    }
}

/// A word laid out: its runs and width in points. `space` is the width of the space before it
/// when it is not the first on its line.
#[derive(Clone)]
struct Word {
    style: Style,
    runs: Vec<Run>,
    width: f32,
    space: f32,
}

fn word(text: &str, style: Style) -> Result<Word> {
    let runs = shape(text, style.family)?;
    let width = runs.iter().map(|r| r.width).sum::<f32>() * style.size;
    let space = shape(" ", style.family)?.iter().map(|r| r.width).sum::<f32>() * style.size;
    Ok(Word { style, runs, width, space })
}

/// A word wider than `max`, cut into pieces that fit: after a folder of a path when the file
/// name then fits, else after a separator (`/`, `_`, `-`, `.`, `:`); at multiples of 8 characters in a hash or a long
/// number (read in fixed groups); at any character only when neither fits.
fn cut(text: &str, style: Style, max: f32) -> Result<Vec<Word>> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let (mut fit, mut soft, mut group, mut slash) = (start + 1, None, None, None);
        for k in start + 1..=chars.len() {
            if word(&chars[start..k].iter().collect::<String>(), style)?.width > max {
                break;
            }
            fit = k;
            if k == chars.len() || matches!(chars[k - 1], '/' | '_' | '-' | '.' | ':') {
                soft = Some(k);
            }
            if chars[k - 1] == '/' {
                slash = Some(k);
            }
            if (k - start).is_multiple_of(8) {
                group = Some(k);
            }
        }
        // A path is best cut after a folder, when the file name then fits its own line.
        if let Some(k) = slash
            && word(&chars[k..].iter().collect::<String>(), style)?.width <= max
        {
            soft = Some(k);
        }
        let alnum = chars[start..].iter().all(|c| c.is_ascii_alphanumeric());
        let stop = if fit == chars.len() {
            fit
        } else if alnum {
            group.unwrap_or(fit)
        } else {
            soft.or(group).unwrap_or(fit)
        };
        out.push(word(&chars[start..stop].iter().collect::<String>(), style)?);
        start = stop;
    }
    Ok(out)
}

/// One line of text: each word placed at its x offset.
#[derive(Clone, Default)]
struct Line {
    words: Vec<(f32, Word)>,
    height: f32,
    ascent: f32,
}

/// Wraps spans of styled text into lines no wider than `max`, breaking at spaces; line breaks
/// in the text are kept.
fn wrap(spans: &[(Style, &str)], max: f32) -> Result<Vec<Line>> {
    let mut lines = vec![Line::default()];
    let mut x = 0.0f32;
    let mut space = false;
    for (style, text) in spans {
        for (n, hard) in text.split('\n').enumerate() {
            if n > 0 {
                lines.push(Line::default());
                x = 0.0;
                space = false;
            }
            for (k, w) in hard.split(' ').enumerate() {
                if k > 0 {
                    space = true;
                }
                if w.is_empty() {
                    continue;
                }
                let whole = word(w, *style)?;
                let pieces = if whole.width > max { cut(w, *style, max)? } else { vec![whole] };
                for (i, piece) in pieces.into_iter().enumerate() {
                    let line = lines.last_mut().expect("a line");
                    let mut gap = if i == 0 && space && !line.words.is_empty() { piece.space } else { 0.0 };
                    if !line.words.is_empty() && x + gap + piece.width > max {
                        lines.push(Line::default());
                        x = 0.0;
                        gap = 0.0;
                    }
                    let line = lines.last_mut().expect("a line");
                    line.height = line.height.max(piece.style.leading());
                    line.ascent = line.ascent.max(piece.style.size);
                    x += gap;
                    let width = piece.width;
                    line.words.push((x, piece));
                    x += width;
                }
                space = false;
            }
        }
    }
    let first = spans.first().map(|s| s.0).unwrap_or(Style::BODY);
    for l in &mut lines {
        if l.height == 0.0 {
            l.height = first.leading();
            l.ascent = first.size;
        }
    }
    Ok(lines)
}

/// Splits text with `backticks` into body and monospace spans (commands and file names in the
/// report's steps), dropping the backticks.
pub fn code_spans(text: &str, body: Style) -> Vec<(Style, String)> {
    text.split('`')
        .enumerate()
        .filter(|(_, s)| !s.is_empty())
        .map(|(i, s)| (if i % 2 == 1 { Style::MONO } else { body }, s.to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The page model.

/// What is drawn on a page, top-left origin, in points.
enum Op {
    Text { x: f32, baseline: f32, word: Word },
    Fill { rect: (f32, f32, f32, f32), gray: u8 },
    Stroke { from: (f32, f32), to: (f32, f32), width: f32 },
    Picture { rect: (f32, f32, f32, f32), image: usize },
}

/// An RGB picture (no alpha: PDF/A-1 forbids soft masks).
#[derive(Clone, Hash)]
struct Rgb {
    data: Vec<u8>,
    width: u32,
    height: u32,
}

impl CustomImage for Rgb {
    fn color_channel(&self) -> &[u8] {
        &self.data
    }
    fn alpha_channel(&self) -> Option<&[u8]> {
        None
    }
    fn bits_per_component(&self) -> BitsPerComponent {
        BitsPerComponent::Eight
    }
    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }
    fn icc_profile(&self) -> Option<&[u8]> {
        None
    }
    fn color_space(&self) -> ImageColorspace {
        ImageColorspace::Rgb
    }
}

/// One column of a table: its title and its share of the width.
pub struct Column<'a> {
    pub title: &'a str,
    pub share: f32,
}

/// A table cell: spans of styled text.
pub type Cell = Vec<(Style, String)>;

pub fn cell(style: Style, text: impl Into<String>) -> Cell {
    vec![(style, text.into())]
}

const MARGIN: f32 = 54.0;
const FOOTER_GAP: f32 = 24.0;
const PAD: f32 = 3.0;

/// A document being laid out.
pub struct Pdf {
    paper: Paper,
    title: String,
    footer: String,
    pages: Vec<Vec<Op>>,
    images: Vec<Rgb>,
    y: f32,
    /// Headings waiting for what follows them, so that a heading never ends a page.
    pending: Vec<(Style, String, f32)>,
    attachments: Vec<(String, String, Vec<u8>)>,
    author: String,
}

impl Pdf {
    pub fn new(title: &str, paper: Paper) -> Pdf {
        Pdf {
            paper,
            title: title.to_owned(),
            footer: String::new(),
            pages: vec![Vec::new()],
            images: Vec::new(),
            y: MARGIN,
            pending: Vec::new(),
            attachments: Vec::new(),
            author: String::new(),
        }
    }

    pub fn set_footer(&mut self, text: &str) {
        self.footer = text.to_owned();
    }

    pub fn set_author(&mut self, name: &str) {
        self.author = name.to_owned();
    }

    /// A file attached inside the PDF (PDF/A-3 only; other levels leave it out).
    pub fn attach(&mut self, name: &str, description: &str, data: Vec<u8>) {
        self.attachments.push((name.to_owned(), description.to_owned(), data));
    }

    pub fn width(&self) -> f32 {
        self.paper.size().0 - 2.0 * MARGIN
    }

    fn bottom(&self) -> f32 {
        self.paper.size().1 - MARGIN - FOOTER_GAP
    }

    fn ops(&mut self) -> &mut Vec<Op> {
        self.pages.last_mut().expect("a page")
    }

    pub fn page_break(&mut self) {
        if self.y > MARGIN || !self.ops().is_empty() {
            self.pages.push(Vec::new());
            self.y = MARGIN;
        }
    }

    /// Places the waiting headings, starting a new page first unless they and `next` points of
    /// what follows them fit on this one.
    fn settle(&mut self, next: f32) -> Result<()> {
        let headings: f32 = self.pending.iter().map(|(_, _, h)| h).sum();
        if self.y + headings + next > self.bottom() && self.y > MARGIN {
            self.page_break();
        }
        for (style, text, space_before) in std::mem::take(&mut self.pending) {
            if self.y > MARGIN {
                self.y += space_before;
            }
            let width = self.width();
            for line in wrap(&[(style, &text)], width)? {
                self.draw_line(MARGIN, &line);
                self.y += line.height;
            }
            self.y += 2.0;
        }
        Ok(())
    }

    fn draw_line(&mut self, x: f32, line: &Line) {
        let baseline = self.y + line.ascent;
        for (dx, w) in &line.words {
            self.pages.last_mut().expect("a page").push(Op::Text { x: x + dx, baseline, word: w.clone() });
        }
    }

    /// A heading of level 1 (the title), 2 (a section) or 3 (an exhibit file). It is drawn
    /// with whatever comes next, never alone at the foot of a page.
    pub fn heading(&mut self, level: u8, text: &str) {
        let (style, before) = match level {
            1 => (Style { family: Family::Bold, size: 16.0, color: (0, 0, 0) }, 0.0),
            2 => (Style { family: Family::Bold, size: 13.0, color: (0, 0, 0) }, 14.0),
            _ => (Style { family: Family::Bold, size: 10.5, color: (0, 0, 0) }, 10.0),
        };
        self.pending.push((style, text.to_owned(), before + style.leading() + 2.0));
    }

    /// A wrapped paragraph of styled spans, with a little space after it.
    pub fn paragraph(&mut self, spans: &[(Style, String)]) -> Result<()> {
        self.paragraph_at(0.0, spans)
    }

    /// A paragraph indented by `indent` points.
    pub fn paragraph_at(&mut self, indent: f32, spans: &[(Style, String)]) -> Result<()> {
        let width = self.width() - indent;
        let borrowed: Vec<(Style, &str)> = spans.iter().map(|(s, t)| (*s, t.as_str())).collect();
        let lines = wrap(&borrowed, width)?;
        self.settle(lines.iter().take(2).map(|l| l.height).sum())?;
        for line in lines {
            if self.y + line.height > self.bottom() {
                self.page_break();
            }
            self.draw_line(MARGIN + indent, &line);
            self.y += line.height;
        }
        self.y += 4.0;
        Ok(())
    }

    /// Vertical space.
    pub fn gap(&mut self, points: f32) {
        self.y += points;
    }

    /// Starts a new page unless `points` more fit on this one.
    pub fn keep(&mut self, points: f32) {
        if self.y + points > self.bottom() {
            self.page_break();
        }
    }

    /// A table with a shaded header row (repeated on each page it continues on) and ruled rows.
    /// A row never splits unless it alone is taller than what is left of a page.
    pub fn table(&mut self, columns: &[Column], rows: &[Vec<Cell>]) -> Result<()> {
        let width = self.width();
        let total: f32 = columns.iter().map(|c| c.share).sum();
        let widths: Vec<f32> = columns.iter().map(|c| width * c.share / total).collect();
        let lay = |cells: &[Cell]| -> Result<Vec<Vec<Line>>> {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| {
                    let spans: Vec<(Style, &str)> = c.iter().map(|(s, t)| (*s, t.as_str())).collect();
                    if spans.is_empty() { Ok(vec![]) } else { wrap(&spans, w - 2.0 * PAD) }
                })
                .collect()
        };
        // Key-value tables have no titles, and no header row.
        let titled = columns.iter().any(|c| !c.title.is_empty());
        let header: Vec<Cell> = columns.iter().map(|c| cell(Style::SMALL_BOLD, c.title)).collect();
        let header_lines = if titled { lay(&header)? } else { Vec::new() };
        let height = |cells: &[Vec<Line>]| -> f32 {
            if cells.is_empty() {
                return 0.0;
            }
            cells.iter().map(|ls| ls.iter().map(|l| l.height).sum::<f32>()).fold(0.0, f32::max) + 2.0 * PAD
        };
        let header_h = height(&header_lines);
        let laid: Vec<Vec<Vec<Line>>> = rows.iter().map(|r| lay(r)).collect::<Result<_>>()?;
        let first = laid.first().map(|r| height(r).min(60.0)).unwrap_or(0.0);
        self.settle(header_h + first)?;
        if self.y + header_h + first > self.bottom() {
            self.page_break();
        }
        self.table_row(&widths, &header_lines, true);
        for row in laid {
            let mut row = row;
            loop {
                let h = height(&row);
                if self.y + h <= self.bottom() {
                    self.table_row(&widths, &row, false);
                    break;
                }
                let room = self.bottom() - self.y - 2.0 * PAD;
                let fresh = self.bottom() - MARGIN - header_h - 2.0 * PAD;
                if h - 2.0 * PAD <= fresh || room < 30.0 {
                    // The row fits a fresh page, or too little is left to be worth splitting.
                    self.page_break();
                    self.table_row(&widths, &header_lines, true);
                    if h - 2.0 * PAD <= fresh {
                        continue;
                    }
                }
                // Split: the lines of each cell that fit here, the rest on the next page.
                let room = self.bottom() - self.y - 2.0 * PAD;
                let mut here = Vec::new();
                let mut rest = Vec::new();
                for lines in row {
                    let mut used = 0.0;
                    let mut k = 0;
                    while k < lines.len() && used + lines[k].height <= room {
                        used += lines[k].height;
                        k += 1;
                    }
                    here.push(lines[..k].to_vec());
                    rest.push(lines[k..].to_vec());
                }
                self.table_row(&widths, &here, false);
                self.page_break();
                self.table_row(&widths, &header_lines, true);
                row = rest;
            }
        }
        self.y += 6.0;
        Ok(())
    }

    fn table_row(&mut self, widths: &[f32], cells: &[Vec<Line>], header: bool) {
        if cells.is_empty() {
            return;
        }
        let h = cells.iter().map(|ls| ls.iter().map(|l| l.height).sum::<f32>()).fold(0.0, f32::max) + 2.0 * PAD;
        let total: f32 = widths.iter().sum();
        let top = self.y;
        if header {
            self.ops().push(Op::Fill { rect: (MARGIN, top, total, h), gray: 225 });
        }
        let mut x = MARGIN;
        for (lines, w) in cells.iter().zip(widths) {
            let mut y = top + PAD;
            for line in lines {
                let baseline = y + line.ascent;
                for (dx, word) in &line.words {
                    self.ops().push(Op::Text { x: x + PAD + dx, baseline, word: word.clone() });
                }
                y += line.height;
            }
            x += w;
        }
        let rule = if header { 0.6 } else { 0.3 };
        self.ops().push(Op::Stroke { from: (MARGIN, top), to: (MARGIN + total, top), width: rule });
        self.ops().push(Op::Stroke { from: (MARGIN, top + h), to: (MARGIN + total, top + h), width: 0.3 });
        self.y = top + h;
    }

    /// A picture at most `max_width` points wide (and never wider than the page), with its
    /// caption below; kept on one page with the heading before it.
    pub fn image(&mut self, rgb: &[u8], width: u32, height: u32, max_width: f32, caption: &str) -> Result<()> {
        if width == 0 || height == 0 || rgb.len() != width as usize * height as usize * 3 {
            return Ok(());
        }
        let w = max_width.min(self.width());
        let mut h = w * height as f32 / width as f32;
        let mut w = w;
        let room = self.bottom() - MARGIN - 60.0;
        if h > room {
            w *= room / h;
            h = room;
        }
        let caption_lines = wrap(&[(Style::SMALL, caption)], self.width())?;
        let caption_h: f32 = caption_lines.iter().map(|l| l.height).sum();
        self.settle(h + caption_h + 4.0)?;
        if self.y + h + caption_h > self.bottom() {
            self.page_break();
        }
        self.images.push(Rgb { data: rgb.to_vec(), width, height });
        let image = self.images.len() - 1;
        let top = self.y;
        self.ops().push(Op::Picture { rect: (MARGIN, top, w, h), image });
        self.y = top + h + 2.0;
        for line in caption_lines {
            self.draw_line(MARGIN, &line);
            self.y += line.height;
        }
        self.y += 6.0;
        Ok(())
    }

    /// A line to sign on, with its label below.
    pub fn signature_line(&mut self, label: &str, width: f32) -> Result<()> {
        self.settle(40.0)?;
        self.keep(40.0);
        self.y += 26.0;
        let y = self.y;
        self.ops().push(Op::Stroke { from: (MARGIN, y), to: (MARGIN + width, y), width: 0.6 });
        self.y += 2.0;
        for line in wrap(&[(Style::SMALL, label)], width)? {
            self.draw_line(MARGIN, &line);
            self.y += line.height;
        }
        Ok(())
    }

    /// The finished PDF at the conformance level asked for, with metadata (title, author,
    /// creation time) and "page N of M" in each footer.
    pub fn finish(mut self, level: Pdfa, created: &jiff::Timestamp) -> Result<Vec<u8>> {
        if !self.pending.is_empty() {
            self.settle(0.0)?;
        }
        if self.pages.len() > 1 && self.pages.last().is_some_and(|p| p.is_empty()) {
            self.pages.pop();
        }
        let archival = match level {
            Pdfa::A1b => Archival::A1_B,
            Pdfa::A2b => Archival::A2_B,
            Pdfa::A3b => Archival::A3_B,
        };
        let configuration = ConfigurationBuilder::new()
            .set_validator(Validator::A(archival))
            .finish()
            .map_err(|e| anyhow!("the report's PDF settings are inconsistent: {e:?}"))?;
        let settings = SerializeSettings { configuration, ..SerializeSettings::default() };
        let mut doc = Document::new_with(settings);
        let t = created.to_zoned(jiff::tz::TimeZone::UTC);
        let date = DateTime::new(t.year() as u16)
            .month(t.month() as u8)
            .day(t.day() as u8)
            .hour(t.hour() as u8)
            .minute(t.minute() as u8)
            .second(t.second() as u8)
            .utc_offset_hour(0)
            .utc_offset_minute(0);
        let mut meta = Metadata::new()
            .title(self.title.clone())
            .language("en".into())
            .creator(format!("custody {}", env!("CARGO_PKG_VERSION")))
            .producer(format!("custody {} (krilla)", env!("CARGO_PKG_VERSION")))
            .creation_date(date);
        if !self.author.is_empty() {
            meta = meta.authors(vec![self.author.clone()]);
        }
        doc.set_metadata(meta);
        if level == Pdfa::A3b {
            for (name, description, data) in std::mem::take(&mut self.attachments) {
                let mime = if name.ends_with(".jsonl") { "application/jsonl" } else { "text/plain" };
                doc.embed_file(EmbeddedFile {
                    path: name,
                    mime_type: MimeType::new(mime),
                    description: Some(description),
                    association_kind: AssociationKind::Supplement,
                    data: data.into(),
                    modification_date: Some(date),
                    compress: Some(true),
                    location: None,
                });
            }
        }
        let images: Vec<Image> = std::mem::take(&mut self.images)
            .into_iter()
            .map(|i| Image::from_custom(i, false).map_err(|e| anyhow!("a picture in the report: {e}")))
            .collect::<Result<_>>()?;
        let (pw, ph) = self.paper.size();
        let count = self.pages.len();
        let pages = std::mem::take(&mut self.pages);
        for (n, ops) in pages.into_iter().enumerate() {
            let mut page = doc.start_page_with(PageSettings::new(Size::from_wh(pw, ph).expect("paper size")));
            let mut s = page.surface();
            let footer = format!("{} · page {} of {count}", self.footer, n + 1);
            let footer_lines = wrap(&[(Style::FOOTER, footer.trim_start_matches(" · "))], pw - 2.0 * MARGIN)?;
            let mut fy = ph - MARGIN + 4.0;
            let mut all = ops;
            for line in footer_lines {
                for (dx, w) in &line.words {
                    all.push(Op::Text { x: MARGIN + dx, baseline: fy + line.ascent, word: w.clone() });
                }
                fy += line.height;
            }
            for op in all {
                match op {
                    Op::Text { x, baseline, word } => {
                        let (r, g, b) = word.style.color;
                        s.set_fill(Some(Fill {
                            paint: rgb::Color::new(r, g, b).into(),
                            opacity: NormalizedF32::ONE,
                            rule: Default::default(),
                        }));
                        let mut x = x;
                        for run in &word.runs {
                            let font = face(run.face)?.font.clone();
                            s.draw_glyphs(
                                Point::from_xy(x, baseline),
                                &run.glyphs,
                                font,
                                &run.text,
                                word.style.size,
                                false,
                            );
                            x += run.width * word.style.size;
                        }
                    }
                    Op::Fill { rect: (x, y, w, h), gray } => {
                        let mut pb = PathBuilder::new();
                        pb.push_rect(Rect::from_xywh(x, y, w, h).context("a table cell")?);
                        s.set_fill(Some(Fill {
                            paint: luma::Color::new(gray).into(),
                            opacity: NormalizedF32::ONE,
                            rule: Default::default(),
                        }));
                        s.set_stroke(None);
                        s.draw_path(&pb.finish().context("a table cell")?);
                    }
                    Op::Stroke { from, to, width } => {
                        let mut pb = PathBuilder::new();
                        pb.move_to(from.0, from.1);
                        pb.line_to(to.0, to.1);
                        s.set_fill(None);
                        s.set_stroke(Some(Stroke { width, ..Stroke::default() }));
                        s.draw_path(&pb.finish().context("a rule")?);
                        s.set_stroke(None);
                    }
                    Op::Picture { rect: (x, y, w, h), image } => {
                        s.push_transform(&krilla::geom::Transform::from_translate(x, y));
                        s.draw_image(images[image].clone(), Size::from_wh(w, h).context("a picture's size")?);
                        s.pop();
                    }
                }
            }
            s.finish();
            page.finish();
        }
        doc.finish().map_err(|e| anyhow!("the report could not be written as {}: {e:?}", level.name()))
    }
}
