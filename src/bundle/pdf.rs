//! A small, dependency-free PDF 1.4 writer for the court "custody and processing report".
//!
//! The report is a flow of blocks (headings, paragraphs, monospaced blocks, pictures) laid out
//! top to bottom on A4 portrait pages with 50 pt margins; a new page starts whenever the next
//! line or picture does not fit. [`Pdf::finish`] writes every page's footer ("Page N of M" and
//! the text given to [`Pdf::set_footer`]) once the page count is known.
//!
//! What the file contains, and why:
//! - Only the standard 14 fonts Helvetica, Helvetica-Bold and Courier, with `/WinAnsiEncoding`,
//!   so nothing has to be embedded and every viewer has them. Text is measured with the Adobe
//!   AFM widths of those fonts (table below), so wrapping matches what the viewer draws.
//! - Pictures are `/XObject /Image` streams, `/DeviceRGB`, 8 bits, uncompressed (there is no
//!   deflate crate, and thumbnails are small). No stream is compressed: the file can be read
//!   with a text editor, which helps when someone has to explain it in court.
//! - A classic cross-reference table with exact byte offsets, written in object-number order.
//! - The output is deterministic: the same calls give the same bytes. There is no creation
//!   date and no `/ID` (optional in PDF 1.4 for unencrypted files); put dates in the text.
//!
//! Characters: page text is encoded in Windows-1252 (WinAnsi). ASCII, Latin-1 (U+00A0..U+00FF)
//! and the 27 WinAnsi extras (€ ‚ ƒ „ … † ‡ ˆ ‰ Š ‹ Œ Ž ‘ ’ “ ” • – — ˜ ™ š › œ ž Ÿ) print as
//! themselves; every other character (CJK, emoji, combining accents of decomposed text, control
//! characters) is printed as one `?` per character. The document title in the Info dictionary
//! is the exception: it is written as UTF-16 when needed, so it keeps every character.

use std::fmt::Write as _;

/// A4 portrait, in points (1/72 inch).
const PAGE_WIDTH: f64 = 595.28;
const PAGE_HEIGHT: f64 = 841.89;
const MARGIN: f64 = 50.0;
const TEXT_WIDTH: f64 = PAGE_WIDTH - 2.0 * MARGIN;
/// The body flows between these two heights (measured from the bottom edge, as PDF does).
const TOP: f64 = PAGE_HEIGHT - MARGIN;
const BOTTOM: f64 = MARGIN;
/// Tolerance for comparing accumulated positions, so that an exact fit is not lost to rounding.
const EPSILON: f64 = 1e-6;

/// Pictures are never drawn wider than this, nor larger than one point per pixel.
const IMAGE_MAX_WIDTH: f64 = 240.0;

/// Vertical space before each kind of block (not added at the top of a page).
const HEADING_GAP: f64 = 12.0;
const PARAGRAPH_GAP: f64 = 6.0;
const MONO_GAP: f64 = 6.0;
const IMAGE_GAP: f64 = 8.0;
/// Space between a picture and its caption.
const CAPTION_GAP: f64 = 4.0;

/// Footer geometry: a thin rule, then up to two lines of footer text whose first line also
/// carries "Page N of M" at the right margin.
const FOOTER_RULE_Y: f64 = 40.0;
const FOOTER_BASELINES: [f64; 2] = [28.0, 18.0];
/// Space kept between the footer text and the page number.
const FOOTER_LABEL_GAP: f64 = 12.0;

/// How a kind of text is set: font, size and line height (all in points).
#[derive(Clone, Copy, Debug)]
struct Style {
    font: Font,
    size: f64,
    leading: f64,
}

const HEADING: Style = Style { font: Font::Bold, size: 14.0, leading: 18.0 };
const BODY: Style = Style { font: Font::Regular, size: 10.0, leading: 13.0 };
const MONO: Style = Style { font: Font::Mono, size: 8.0, leading: 10.0 };
const CAPTION: Style = Style { font: Font::Regular, size: 8.0, leading: 10.0 };
const FOOTER: Style = Style { font: Font::Regular, size: 8.0, leading: 10.0 };

/// Courier glyphs are all 600/1000 em wide, so a monospaced line holds this many characters.
const MONO_COLUMNS: usize = (TEXT_WIDTH / (MONO.size * 0.6)) as usize;
/// Tab stops in monospaced blocks, as in a terminal.
const TAB_WIDTH: usize = 8;

/// The three standard fonts the report uses. Their object numbers are fixed (see `finish`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Font {
    Regular,
    Bold,
    Mono,
}

impl Font {
    const ALL: [Font; 3] = [Font::Regular, Font::Bold, Font::Mono];

    /// The name of the font in each page's `/Resources`.
    fn resource(self) -> &'static str {
        match self {
            Font::Regular => "F1",
            Font::Bold => "F2",
            Font::Mono => "F3",
        }
    }

    fn base_font(self) -> &'static str {
        match self {
            Font::Regular => "Helvetica",
            Font::Bold => "Helvetica-Bold",
            Font::Mono => "Courier",
        }
    }

    /// Advance width of one WinAnsi byte, in 1/1000 em.
    fn glyph_width(self, byte: u8) -> u32 {
        let table = match self {
            Font::Regular => &HELVETICA_WIDTHS,
            Font::Bold => &HELVETICA_BOLD_WIDTHS,
            Font::Mono => return 600,
        };
        // Bytes below 0x20 are never produced by `encode_char`; be generous if one ever is.
        usize::from(byte).checked_sub(32).and_then(|i| table.get(i)).map_or(1000, |&w| u32::from(w))
    }

    /// Advance width of a WinAnsi string, in 1/1000 em.
    fn text_width(self, bytes: &[u8]) -> u32 {
        bytes.iter().map(|&b| self.glyph_width(b)).sum()
    }
}

/// Helvetica advance widths (1/1000 em) for WinAnsi codes 0x20..=0xFF, from Adobe's
/// `Helvetica.afm` (Core 14 AFM files). Codes WinAnsi leaves undefined (0x7F, 0x81, 0x8D,
/// 0x8F, 0x90, 0x9D) are never emitted; they carry the bullet width 350.
#[rustfmt::skip]
const HELVETICA_WIDTHS: [u16; 224] = [
    // 0x20 space ! " # $ % & ' ( ) * + , - . /
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
    // 0x30 0-9 : ; < = > ?
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
    // 0x40 @ A-O
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
    // 0x50 P-Z [ \ ] ^ _
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
    // 0x60 ` a-o
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
    // 0x70 p-z { | } ~ (0x7F undefined)
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, 350,
    // 0x80 € - ‚ ƒ „ … † ‡ ˆ ‰ Š ‹ Œ - Ž -
    556, 350, 222, 556, 333, 1000, 556, 556, 333, 1000, 667, 333, 1000, 350, 611, 350,
    // 0x90 - ‘ ’ “ ” • – — ˜ ™ š › œ - ž Ÿ
    350, 222, 222, 333, 333, 350, 556, 1000, 333, 1000, 500, 333, 944, 350, 500, 667,
    // 0xA0 nbsp ¡ ¢ £ ¤ ¥ ¦ § ¨ © ª « ¬ shy ® ¯
    278, 333, 556, 556, 556, 556, 260, 556, 333, 737, 370, 556, 584, 333, 737, 333,
    // 0xB0 ° ± ² ³ ´ µ ¶ · ¸ ¹ º » ¼ ½ ¾ ¿
    400, 584, 333, 333, 333, 556, 537, 278, 333, 333, 365, 556, 834, 834, 834, 611,
    // 0xC0 À-Ï
    667, 667, 667, 667, 667, 667, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278,
    // 0xD0 Ð-ß
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611,
    // 0xE0 à-ï
    556, 556, 556, 556, 556, 556, 889, 500, 556, 556, 556, 556, 278, 278, 278, 278,
    // 0xF0 ð-ÿ
    556, 556, 556, 556, 556, 556, 556, 584, 611, 556, 556, 556, 556, 500, 556, 500,
];

/// Helvetica-Bold advance widths, laid out as [`HELVETICA_WIDTHS`], from `Helvetica-Bold.afm`.
#[rustfmt::skip]
const HELVETICA_BOLD_WIDTHS: [u16; 224] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611,
    975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556,
    333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611,
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584, 350,
    556, 350, 278, 556, 500, 1000, 556, 556, 333, 1000, 667, 333, 1000, 350, 611, 350,
    350, 278, 278, 500, 500, 350, 556, 1000, 333, 1000, 556, 333, 944, 350, 500, 667,
    278, 333, 556, 556, 556, 556, 280, 556, 333, 737, 370, 556, 584, 333, 737, 333,
    400, 584, 333, 333, 333, 611, 556, 278, 333, 333, 365, 556, 834, 834, 834, 611,
    722, 722, 722, 722, 722, 722, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278,
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611,
    556, 556, 556, 556, 556, 556, 889, 556, 556, 556, 556, 556, 278, 278, 278, 278,
    611, 611, 611, 611, 611, 611, 611, 584, 611, 611, 611, 611, 611, 556, 611, 556,
];

/// One page being laid out: its content-stream operators (without the footer, which needs the
/// page count) and the pictures it draws (indices into `Pdf::images`).
#[derive(Default)]
struct Page {
    ops: String,
    images: Vec<usize>,
}

/// A picture to embed: RGB8 samples, row by row, top row first.
struct Image {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

/// A report being laid out. Add blocks in reading order, then call [`Pdf::finish`].
///
/// ```
/// use custody::bundle::pdf::Pdf;
///
/// let mut pdf = Pdf::new("Custody and processing report");
/// pdf.set_footer("Case 24-1234");
/// pdf.heading("1. Items");
/// pdf.paragraph("Item 3 was received from the DVR at 10:02.");
/// pdf.mono("sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
/// let bytes = pdf.finish();
/// assert!(bytes.starts_with(b"%PDF-1.4"));
/// ```
pub struct Pdf {
    title: String,
    footer: String,
    /// Never empty: the last page is the one being filled.
    pages: Vec<Page>,
    images: Vec<Image>,
    /// Top of the free space on the current page, in points from the bottom edge.
    y: f64,
    /// Nothing has been placed on the current page yet (no gaps above the first block, and no
    /// new page for something that would not fit on an empty page either).
    fresh: bool,
}

impl Pdf {
    /// Starts an empty report. `title` goes into the document information dictionary (viewers
    /// show it as the window title); it is not printed on the page: use [`Pdf::heading`].
    pub fn new(title: &str) -> Pdf {
        Pdf {
            title: title.to_owned(),
            footer: String::new(),
            pages: vec![Page::default()],
            images: Vec::new(),
            y: TOP,
            fresh: true,
        }
    }

    /// Sets the footer text printed at the bottom left of every page (including pages laid
    /// out before this call), next to "Page N of M". It wraps onto a second footer line if
    /// needed; text beyond two lines is cut and ends in "...".
    pub fn set_footer(&mut self, text: &str) {
        text.clone_into(&mut self.footer);
    }

    /// Adds a heading: Helvetica-Bold 14 pt with space above. A heading is kept on the same
    /// page as at least the first line that follows it.
    pub fn heading(&mut self, text: &str) {
        let lines = wrap_text(text, HEADING.font, HEADING.size, TEXT_WIDTH);
        if lines.is_empty() {
            return;
        }
        let needed = lines.len() as f64 * HEADING.leading + BODY.leading;
        self.start_block(HEADING_GAP, needed);
        for line in &lines {
            self.text_line(HEADING, line);
        }
    }

    /// Adds a paragraph of Helvetica 10 pt, word-wrapped to the text width. Runs of spaces and
    /// tabs collapse to one space; `\n` starts a new line. A word wider than the whole line
    /// (a long hash, a path) is broken between characters.
    pub fn paragraph(&mut self, text: &str) {
        let lines = wrap_text(text, BODY.font, BODY.size, TEXT_WIDTH);
        if lines.is_empty() {
            return;
        }
        self.start_block(PARAGRAPH_GAP, BODY.leading);
        for line in &lines {
            self.text_line(BODY, line);
        }
    }

    /// Adds a block of Courier 8 pt for hashes, commands and JSON: one line per `\n`, spaces
    /// kept as they are, tabs expanded to 8-column stops, and lines longer than the text width
    /// (103 characters) continued on the next line.
    pub fn mono(&mut self, text: &str) {
        let lines = wrap_mono(text, MONO_COLUMNS);
        if lines.is_empty() {
            return;
        }
        self.start_block(MONO_GAP, MONO.leading);
        for line in &lines {
            self.text_line(MONO, line);
        }
    }

    /// Adds an RGB8 picture (`width * height * 3` bytes, rows top to bottom) with a Helvetica
    /// 8 pt caption below it. The picture is drawn at one point per pixel at most, no wider
    /// than 240 pt, and shrunk further if it would not fit on a page; it keeps its aspect ratio.
    ///
    /// If `rgb` does not hold exactly `width * height * 3` bytes (or a side is zero), no picture
    /// is embedded; a visible "[picture not embedded: ...]" line stands in its place, followed
    /// by the caption, so the report never silently loses an exhibit.
    pub fn image(&mut self, rgb: &[u8], width: u32, height: u32, caption: &str) {
        let expected = usize::try_from(width)
            .ok()
            .zip(usize::try_from(height).ok())
            .and_then(|(w, h)| w.checked_mul(h))
            .and_then(|n| n.checked_mul(3));
        if width == 0 || height == 0 || expected != Some(rgb.len()) {
            let needed = expected.map_or_else(|| "too many".to_owned(), |n| n.to_string());
            self.paragraph(&format!(
                "[picture not embedded: {width}x{height} RGB8 needs {needed} bytes, {} given]",
                rgb.len()
            ));
            self.caption(caption);
            return;
        }

        let caption_lines = wrap_text(caption, CAPTION.font, CAPTION.size, TEXT_WIDTH);
        let caption_first = if caption_lines.is_empty() { 0.0 } else { CAPTION_GAP + CAPTION.leading };
        let (w, h) = (f64::from(width), f64::from(height));
        let mut scale = (IMAGE_MAX_WIDTH / w).min(1.0);
        let max_height = TOP - BOTTOM - caption_first;
        if h * scale > max_height {
            scale = max_height / h;
        }
        let (draw_w, draw_h) = (w * scale, h * scale);

        // The picture and the first caption line stay together.
        self.start_block(IMAGE_GAP, draw_h + caption_first);
        let index = self.images.len();
        self.images.push(Image { width, height, rgb: rgb.to_vec() });
        let bottom = self.y - draw_h;
        let page = self.current_page();
        // `cm` maps the image's unit square onto the drawing box.
        let _ = writeln!(
            page.ops,
            "q {} 0 0 {} {} {} cm /Im{} Do Q",
            num(draw_w),
            num(draw_h),
            num(MARGIN),
            num(bottom),
            index + 1
        );
        page.images.push(index);
        self.y = bottom;
        self.fresh = false;

        if !caption_lines.is_empty() {
            self.y -= CAPTION_GAP;
            for line in &caption_lines {
                self.text_line(CAPTION, line);
            }
        }
    }

    /// Starts a new page. Does nothing on a page that is still empty, so consecutive breaks, a
    /// break right after an automatic one, or a break at the very end never leave blank pages.
    pub fn page_break(&mut self) {
        if !self.fresh {
            self.new_page();
        }
    }

    /// Writes the complete PDF file.
    ///
    /// Object numbers: 1 catalog, 2 page tree, 3 document information, 4-6 fonts, then the
    /// pictures in the order they were added, then for each page its page object followed by
    /// its content stream.
    pub fn finish(mut self) -> Vec<u8> {
        const FIRST_FONT: usize = 4;
        const FIRST_IMAGE: usize = FIRST_FONT + Font::ALL.len();
        // A page opened by a trailing `page_break` holds nothing: drop it. (Automatic breaks
        // only open a page to place something on it.)
        if self.fresh && self.pages.len() > 1 {
            self.pages.pop();
        }
        let total = self.pages.len();
        let first_page = FIRST_IMAGE + self.images.len();
        let page_object = |i: usize| first_page + 2 * i;

        let fonts: String = Font::ALL
            .iter()
            .enumerate()
            .map(|(i, font)| format!("/{} {} 0 R", font.resource(), FIRST_FONT + i))
            .collect::<Vec<_>>()
            .join(" ");
        let footer = FooterLayout::new(&self.footer, total);

        let mut out = ObjectWriter::new();
        out.object("<< /Type /Catalog /Pages 2 0 R >>");
        let kids: Vec<String> = (0..total).map(|i| format!("{} 0 R", page_object(i))).collect();
        out.object(&format!("<< /Type /Pages /Kids [{}] /Count {total} >>", kids.join(" ")));
        out.object(&format!(
            "<< /Title {} /Producer {} >>",
            text_string(&self.title),
            text_string(concat!("custody ", env!("CARGO_PKG_VERSION")))
        ));
        for font in Font::ALL {
            out.object(&format!(
                "<< /Type /Font /Subtype /Type1 /BaseFont /{} /Encoding /WinAnsiEncoding >>",
                font.base_font()
            ));
        }
        for image in &self.images {
            out.stream(
                &format!(
                    "/Type /XObject /Subtype /Image /Width {} /Height {} /ColorSpace /DeviceRGB /BitsPerComponent 8",
                    image.width, image.height
                ),
                &image.rgb,
            );
        }
        for (i, page) in self.pages.iter().enumerate() {
            let xobjects: String = page
                .images
                .iter()
                .map(|&img| format!("/Im{} {} 0 R", img + 1, FIRST_IMAGE + img))
                .collect::<Vec<_>>()
                .join(" ");
            let xobjects = if xobjects.is_empty() { String::new() } else { format!(" /XObject << {xobjects} >>") };
            out.object(&format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {} {}] /Resources << /Font << {fonts} >>{xobjects} \
                 /ProcSet [/PDF /Text /ImageC] >> /Contents {} 0 R >>",
                num(PAGE_WIDTH),
                num(PAGE_HEIGHT),
                page_object(i) + 1
            ));
            let mut content = page.ops.clone();
            content.push_str(&footer.ops(i + 1));
            out.stream("", content.as_bytes());
        }
        out.finish(1, 3)
    }

    fn current_page(&mut self) -> &mut Page {
        // `pages` is never empty: `new` creates the first page and nothing removes one.
        self.pages.last_mut().expect("a report always has a current page")
    }

    fn new_page(&mut self) {
        self.pages.push(Page::default());
        self.y = TOP;
        self.fresh = true;
    }

    /// Opens a block that needs `needed` points for its first part (what must not be split
    /// from it): adds `gap` above it, or starts a new page if the two do not fit here.
    fn start_block(&mut self, gap: f64, needed: f64) {
        if self.fresh {
            return;
        }
        if self.y - gap - needed < BOTTOM - EPSILON {
            self.new_page();
        } else {
            self.y -= gap;
        }
    }

    /// Sets one line of (already encoded and wrapped) text, on a new page if it does not fit.
    fn text_line(&mut self, style: Style, line: &[u8]) {
        if self.fresh && line.is_empty() {
            // A blank line at the top of a page would only push the content down.
            return;
        }
        if !self.fresh && self.y - style.leading < BOTTOM - EPSILON {
            self.new_page();
        }
        if !line.is_empty() {
            let baseline = self.y - style.size;
            let page = self.current_page();
            push_text(&mut page.ops, style, MARGIN, baseline, line);
        }
        self.y -= style.leading;
        self.fresh = false;
    }

    /// The caption of a picture that could not be embedded: set like a normal caption.
    fn caption(&mut self, caption: &str) {
        for line in &wrap_text(caption, CAPTION.font, CAPTION.size, TEXT_WIDTH) {
            self.text_line(CAPTION, line);
        }
    }
}

/// The footer is the same on every page except for the page number, so it is wrapped once.
struct FooterLayout {
    lines: Vec<Vec<u8>>,
    total: usize,
}

impl FooterLayout {
    fn new(text: &str, total: usize) -> FooterLayout {
        // Leave room for the widest label, "Page M of M", so that every page wraps alike.
        let widest = encode(&format!("Page {total} of {total}"));
        let label_width = points(FOOTER.font.text_width(&widest), FOOTER.size);
        let max_width = TEXT_WIDTH - label_width - FOOTER_LABEL_GAP;
        let mut lines = wrap_text(text, FOOTER.font, FOOTER.size, max_width);
        if lines.len() > FOOTER_BASELINES.len() {
            lines.truncate(FOOTER_BASELINES.len());
            let last = lines.last_mut().expect("at least one footer line is kept");
            let max_units = units_for(max_width, FOOTER.size);
            while !last.is_empty() && FOOTER.font.text_width(last) + FOOTER.font.text_width(b"...") > max_units {
                last.pop();
            }
            last.extend_from_slice(b"...");
        }
        FooterLayout { lines, total }
    }

    /// Content-stream operators for the footer of page `number` (1-based).
    fn ops(&self, number: usize) -> String {
        let mut ops = String::new();
        let _ = writeln!(
            ops,
            "q 0.6 G 0.5 w {} {y} m {} {y} l S Q",
            num(MARGIN),
            num(MARGIN + TEXT_WIDTH),
            y = num(FOOTER_RULE_Y)
        );
        ops.push_str("q 0.25 g\n");
        let label = encode(&format!("Page {number} of {}", self.total));
        let label_x = MARGIN + TEXT_WIDTH - points(FOOTER.font.text_width(&label), FOOTER.size);
        push_text(&mut ops, FOOTER, label_x, FOOTER_BASELINES[0], &label);
        for (line, baseline) in self.lines.iter().zip(FOOTER_BASELINES) {
            push_text(&mut ops, FOOTER, MARGIN, baseline, line);
        }
        ops.push_str("Q\n");
        ops
    }
}

/// Appends one text-showing operation; `bytes` are WinAnsi-encoded.
fn push_text(ops: &mut String, style: Style, x: f64, baseline: f64, bytes: &[u8]) {
    let _ = writeln!(
        ops,
        "BT /{} {} Tf {} {} Td {} Tj ET",
        style.font.resource(),
        num(style.size),
        num(x),
        num(baseline),
        literal(bytes)
    );
}

/// Converts 1/1000-em units at `size` points to points.
fn points(units: u32, size: f64) -> f64 {
    f64::from(units) * size / 1000.0
}

/// The largest width in 1/1000-em units that fits in `width` points at `size` points.
/// Measuring in integer units keeps line breaking exact and platform-independent.
fn units_for(width: f64, size: f64) -> u32 {
    (width * 1000.0 / size + EPSILON).floor() as u32
}

/// Formats a coordinate with at most two decimals and no exponent (PDF has no `1e-3` syntax).
fn num(value: f64) -> String {
    let s = format!("{value:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".to_owned() } else { s.to_owned() }
}

/// Maps one character to its WinAnsi (Windows-1252) byte, or `?` if it has none.
/// Control characters also become `?`: they have no glyph.
fn encode_char(c: char) -> u8 {
    match c {
        ' '..='~' | '\u{A0}'..='\u{FF}' => u8::try_from(c).unwrap_or(b'?'),
        '\u{20AC}' => 0x80, // euro sign
        '\u{201A}' => 0x82, // single low-9 quotation mark
        '\u{0192}' => 0x83, // latin small f with hook
        '\u{201E}' => 0x84, // double low-9 quotation mark
        '\u{2026}' => 0x85, // horizontal ellipsis
        '\u{2020}' => 0x86, // dagger
        '\u{2021}' => 0x87, // double dagger
        '\u{02C6}' => 0x88, // modifier letter circumflex accent
        '\u{2030}' => 0x89, // per mille sign
        '\u{0160}' => 0x8A, // S with caron
        '\u{2039}' => 0x8B, // single left-pointing angle quotation mark
        '\u{0152}' => 0x8C, // ligature OE
        '\u{017D}' => 0x8E, // Z with caron
        '\u{2018}' => 0x91, // left single quotation mark
        '\u{2019}' => 0x92, // right single quotation mark
        '\u{201C}' => 0x93, // left double quotation mark
        '\u{201D}' => 0x94, // right double quotation mark
        '\u{2022}' => 0x95, // bullet
        '\u{2013}' => 0x96, // en dash
        '\u{2014}' => 0x97, // em dash
        '\u{02DC}' => 0x98, // small tilde
        '\u{2122}' => 0x99, // trade mark sign
        '\u{0161}' => 0x9A, // s with caron
        '\u{203A}' => 0x9B, // single right-pointing angle quotation mark
        '\u{0153}' => 0x9C, // ligature oe
        '\u{017E}' => 0x9E, // z with caron
        '\u{0178}' => 0x9F, // Y with diaeresis
        _ => b'?',
    }
}

/// Encodes text to WinAnsi, one byte per character (see [`encode_char`]).
fn encode(text: &str) -> Vec<u8> {
    text.chars().map(encode_char).collect()
}

/// A PDF literal string for WinAnsi bytes. Parentheses and backslashes are escaped (so the
/// string cannot end early or swallow an escape), and bytes above 0x7E are written as octal
/// escapes so that content streams stay plain ASCII.
fn literal(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('(');
    for &b in bytes {
        match b {
            b'(' | b')' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b' '..=b'~' => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out.push(')');
    out
}

/// A PDF text string (for the Info dictionary): an escaped literal when the text is printable
/// ASCII, otherwise UTF-16BE with a byte-order mark, which keeps every character.
fn text_string(text: &str) -> String {
    if text.chars().all(|c| matches!(c, ' '..='~')) {
        return literal(text.as_bytes());
    }
    let mut out = String::from("<FEFF");
    for unit in text.encode_utf16() {
        let _ = write!(out, "{unit:04X}");
    }
    out.push('>');
    out
}

/// Word-wraps `text` into WinAnsi lines no wider than `max_width` points in `font` at `size`.
/// `\n` (or `\r\n`) ends a line; runs of ASCII whitespace collapse to one space; a word wider
/// than a whole line is broken between characters. Whitespace-only text gives no lines.
fn wrap_text(text: &str, font: Font, size: f64, max_width: f64) -> Vec<Vec<u8>> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    let max_units = units_for(max_width, size);
    let space = font.glyph_width(b' ');
    let mut lines = Vec::new();
    for hard_line in text.lines() {
        let mut line: Vec<u8> = Vec::new();
        let mut line_units = 0;
        for word in hard_line.split_ascii_whitespace() {
            let word = encode(word);
            let word_units = font.text_width(&word);
            if !line.is_empty() && line_units + space + word_units <= max_units {
                line.push(b' ');
                line.extend_from_slice(&word);
                line_units += space + word_units;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            if word_units <= max_units {
                line = word;
                line_units = word_units;
                continue;
            }
            // Too long for any line: break between characters, full lines first.
            line_units = 0;
            for b in word {
                let w = font.glyph_width(b);
                if !line.is_empty() && line_units + w > max_units {
                    lines.push(std::mem::take(&mut line));
                    line_units = 0;
                }
                line.push(b);
                line_units += w;
            }
        }
        // An empty hard line is kept: it is a deliberate blank line.
        lines.push(line);
    }
    lines
}

/// Splits `text` into WinAnsi lines of at most `columns` characters for a monospaced font:
/// one line per `\n` (or `\r\n`), tabs expanded to stops every [`TAB_WIDTH`] columns, long
/// lines continued on the next line. Whitespace-only text gives no lines.
fn wrap_mono(text: &str, columns: usize) -> Vec<Vec<u8>> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    let mut lines = Vec::new();
    for hard_line in text.lines() {
        let mut expanded = Vec::with_capacity(hard_line.len());
        for c in hard_line.chars() {
            if c == '\t' {
                let pad = TAB_WIDTH - expanded.len() % TAB_WIDTH;
                expanded.resize(expanded.len() + pad, b' ');
            } else {
                expanded.push(encode_char(c));
            }
        }
        if expanded.is_empty() {
            lines.push(expanded);
        } else {
            lines.extend(expanded.chunks(columns).map(<[u8]>::to_vec));
        }
    }
    lines
}

/// Writes numbered objects in order and remembers where each starts, for the xref table.
struct ObjectWriter {
    out: Vec<u8>,
    /// Byte offset of object `i + 1`.
    offsets: Vec<usize>,
}

impl ObjectWriter {
    fn new() -> ObjectWriter {
        // The second line holds bytes above 0x7F, which tells transfer tools the file is binary
        // (the picture streams are raw samples).
        ObjectWriter { out: b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec(), offsets: Vec::new() }
    }

    /// Starts the next object and returns its number.
    fn begin(&mut self) -> usize {
        self.offsets.push(self.out.len());
        let number = self.offsets.len();
        self.out.extend_from_slice(format!("{number} 0 obj\n").as_bytes());
        number
    }

    fn object(&mut self, body: &str) -> usize {
        let number = self.begin();
        self.out.extend_from_slice(body.as_bytes());
        self.out.extend_from_slice(b"\nendobj\n");
        number
    }

    /// A stream object; `dict` holds the dictionary entries other than `/Length`.
    fn stream(&mut self, dict: &str, data: &[u8]) -> usize {
        let number = self.begin();
        let sep = if dict.is_empty() { "" } else { " " };
        self.out.extend_from_slice(format!("<< {dict}{sep}/Length {} >>\nstream\n", data.len()).as_bytes());
        self.out.extend_from_slice(data);
        // The end-of-line before `endstream` is not part of the data (PDF 1.4, 3.2.7).
        self.out.extend_from_slice(b"\nendstream\nendobj\n");
        number
    }

    /// Appends the cross-reference table and trailer and returns the file.
    fn finish(mut self, root: usize, info: usize) -> Vec<u8> {
        let xref = self.out.len();
        let size = self.offsets.len() + 1;
        let mut table = format!("xref\n0 {size}\n0000000000 65535 f \n");
        for offset in &self.offsets {
            // Each entry is exactly 20 bytes: 10-digit offset, generation, type, space + LF.
            let _ = writeln!(table, "{offset:010} 00000 n ");
        }
        let _ =
            writeln!(table, "trailer\n<< /Size {size} /Root {root} 0 R /Info {info} 0 R >>\nstartxref\n{xref}\n%%EOF");
        self.out.extend_from_slice(table.as_bytes());
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// One indirect object as read back through the xref table.
    struct Object {
        /// The text between `N 0 obj\n` and `endobj` (or `stream`), for dictionary checks.
        dict: String,
        stream: Option<Vec<u8>>,
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).rposition(|w| w == needle)
    }

    fn ascii(bytes: &[u8]) -> String {
        assert!(bytes.is_ascii(), "expected ASCII, got {:?}", String::from_utf8_lossy(bytes));
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// The integer after `key ` in a dictionary, e.g. `/Length 12`.
    fn dict_int(dict: &str, key: &str) -> usize {
        let rest =
            &dict[dict.find(&format!("{key} ")).unwrap_or_else(|| panic!("no {key} in {dict}")) + key.len() + 1..];
        rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    }

    /// A deliberately independent, minimal reader: checks the file structure byte by byte
    /// (header, xref entries and offsets, trailer, every stream's /Length) and returns the
    /// objects by number (index 0 is object 1).
    #[track_caller]
    fn parse(pdf: &[u8]) -> Vec<Object> {
        assert!(pdf.starts_with(b"%PDF-1.4\n%") && pdf[10..14].iter().all(|&b| b > 127), "header + binary marker");
        assert!(pdf.ends_with(b"%%EOF\n"), "trailer end");
        let sx = rfind(pdf, b"startxref\n").expect("startxref");
        let xref: usize = ascii(&pdf[sx + 10..pdf.len() - 6]).trim().parse().expect("startxref offset");
        assert!(pdf[xref..].starts_with(b"xref\n0 "), "startxref must point at the xref table");
        let header_line = ascii(&pdf[xref + 5..xref + find(&pdf[xref + 5..], b"\n").unwrap() + 5]);
        let size: usize = header_line.strip_prefix("0 ").unwrap().parse().unwrap();
        let entries_start = xref + 5 + header_line.len() + 1;
        let entry = |i: usize| &pdf[entries_start + 20 * i..entries_start + 20 * (i + 1)];
        assert_eq!(entry(0), b"0000000000 65535 f \n");
        let mut offsets = Vec::new();
        for i in 1..size {
            let e = ascii(entry(i));
            assert_eq!(&e[10..], " 00000 n \n", "entry {i} format: {e:?}");
            let offset: usize = e[..10].parse().unwrap();
            assert!(
                pdf[offset..].starts_with(format!("{i} 0 obj\n").as_bytes()),
                "xref entry {i} (offset {offset}) does not point at `{i} 0 obj`"
            );
            offsets.push(offset);
        }
        let trailer = ascii(&pdf[entries_start + 20 * size..sx]);
        assert_eq!(trailer, format!("trailer\n<< /Size {size} /Root 1 0 R /Info 3 0 R >>\n"));

        let mut sorted = offsets.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, offsets, "objects are written in number order");
        offsets
            .iter()
            .enumerate()
            .map(|(i, &start)| {
                let end = offsets.get(i + 1).copied().unwrap_or(xref);
                let obj = &pdf[start..end];
                assert!(obj.ends_with(b"endobj\n"), "object {} must end with endobj", i + 1);
                let body = &obj[format!("{} 0 obj\n", i + 1).len()..];
                match find(body, b">>\nstream\n") {
                    None => Object { dict: ascii(&body[..body.len() - 8]), stream: None },
                    Some(at) => {
                        let dict = ascii(&body[..at + 2]);
                        let length = dict_int(&dict, "/Length");
                        let data = &body[at + 10..];
                        assert!(data.len() >= length, "object {}: /Length {length} runs past the object", i + 1);
                        assert_eq!(
                            &data[length..],
                            b"\nendstream\nendobj\n",
                            "object {}: /Length {length} must end exactly at the data",
                            i + 1
                        );
                        Object { dict, stream: Some(data[..length].to_vec()) }
                    }
                }
            })
            .collect()
    }

    /// The content stream of each page, in page-tree order, after checking the page tree.
    #[track_caller]
    fn page_contents(objects: &[Object]) -> Vec<String> {
        assert!(objects[0].dict.starts_with("<< /Type /Catalog /Pages 2 0 R"));
        let tree = &objects[1].dict;
        assert!(tree.starts_with("<< /Type /Pages "));
        let count = dict_int(tree, "/Count");
        let kids: Vec<usize> = tree[tree.find("/Kids [").unwrap() + 7..tree.find(']').unwrap()]
            .split(" 0 R")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        let page_objects = objects.iter().filter(|o| o.dict.starts_with("<< /Type /Page ")).count();
        assert_eq!(count, kids.len(), "/Count vs /Kids");
        assert_eq!(count, page_objects, "/Count vs page objects");
        kids.iter()
            .map(|&kid| {
                let page = &objects[kid - 1];
                assert!(page.dict.starts_with("<< /Type /Page /Parent 2 0 R"));
                let contents = dict_int(&page.dict, "/Contents");
                ascii(objects[contents - 1].stream.as_ref().expect("contents is a stream"))
            })
            .collect()
    }

    fn contents_of(pdf: Pdf) -> Vec<String> {
        page_contents(&parse(&pdf.finish()))
    }

    /// A paragraph's worth of ordinary report text.
    fn filler(i: usize) -> String {
        format!(
            "Entry {i}: item 3 was copied from the DVR export drive to the evidence store, read back and \
             verified; the SHA-256 and BLAKE3 digests of the copy match those of the source, and the \
             DVR clock was found to run 41 seconds ahead of the reference clock."
        )
    }

    fn sample_report() -> Pdf {
        let mut pdf = Pdf::new("Custody and processing report");
        pdf.set_footer("Case 24-1234 - ledger head 42:ab12");
        pdf.heading("1. Items received");
        pdf.paragraph(&filler(0));
        pdf.mono("sha256  9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  item3.dav");
        let rgb: Vec<u8> = (0..16 * 9 * 3).map(|i| (i * 7 % 256) as u8).collect();
        pdf.image(&rgb, 16, 9, "Figure 1: frame 1 of item 3");
        pdf
    }

    #[test]
    fn empty_document_is_one_valid_page() {
        let pages = contents_of(Pdf::new("Empty"));
        assert_eq!(pages.len(), 1);
        assert!(pages[0].contains("(Page 1 of 1) Tj"));
    }

    #[test]
    fn xref_offsets_and_stream_lengths_are_exact() {
        let bytes = sample_report().finish();
        let objects = parse(&bytes);
        // catalog, pages, info, 3 fonts, 1 image, 1 page + its contents
        assert_eq!(objects.len(), 9);
        assert!(objects[2].dict.contains("/Title (Custody and processing report)"));
        for (i, font) in ["Helvetica", "Helvetica-Bold", "Courier"].iter().enumerate() {
            assert_eq!(
                objects[3 + i].dict,
                format!("<< /Type /Font /Subtype /Type1 /BaseFont /{font} /Encoding /WinAnsiEncoding >>")
            );
        }
        let image = &objects[6];
        assert!(image.dict.contains("/Subtype /Image /Width 16 /Height 9 /ColorSpace /DeviceRGB /BitsPerComponent 8"));
        assert_eq!(image.stream.as_ref().unwrap().len(), 16 * 9 * 3);
        assert!(objects[7].dict.contains("/XObject << /Im1 7 0 R >>"));
    }

    #[test]
    fn long_report_spans_pages_with_numbered_footers() {
        let mut pdf = sample_report();
        for i in 1..=150 {
            if i % 10 == 0 {
                pdf.heading(&format!("Section {i}"));
            }
            pdf.paragraph(&filler(i));
        }
        let pages = contents_of(pdf);
        let total = pages.len();
        assert!(total >= 5, "150 paragraphs should need several pages, got {total}");
        for (i, page) in pages.iter().enumerate() {
            assert!(page.contains(&format!("(Page {} of {total}) Tj", i + 1)), "page {} number", i + 1);
            assert!(page.contains("(Case 24-1234 - ledger head 42:ab12) Tj"), "page {} footer", i + 1);
            assert!(page.contains("/F1 10 Tf"), "page {} has body text", i + 1);
        }
        // Nothing is lost or duplicated at the page breaks.
        let all = pages.concat();
        for i in 1..=150 {
            assert_eq!(all.matches(&format!("(Entry {i}: item 3")).count(), 1, "entry {i}");
        }
    }

    /// A string operand as the font sees it: undoes `literal`.
    fn unescape(lit: &str) -> Vec<u8> {
        let inner = lit.strip_prefix('(').and_then(|s| s.strip_suffix(')')).expect("a literal string");
        let bytes = inner.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'\\' {
                if bytes[i + 1].is_ascii_digit() {
                    out.push(u8::from_str_radix(&inner[i + 1..i + 4], 8).unwrap());
                    i += 4;
                } else {
                    out.push(bytes[i + 1]);
                    i += 2;
                }
            } else {
                assert!(bytes[i] != b'(' && bytes[i] != b')', "unescaped parenthesis in {lit}");
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }

    #[test]
    fn layout_stays_inside_the_page_and_margins() {
        let mut pdf = sample_report();
        pdf.set_footer(&"very long footer text ".repeat(40));
        for i in 0..60 {
            pdf.paragraph(&format!("{} {}", filler(i), "0123456789abcdef".repeat(12)));
            pdf.mono(&format!("{{\"entry\": {i}, \"note\": \"{}\"}}", "x".repeat(250)));
        }
        let rgb = vec![200u8; 100 * 3000 * 3];
        pdf.image(&rgb, 100, 3000, "a tall picture is shrunk to fit the page");
        let right = PAGE_WIDTH - MARGIN + 0.01;
        let mut lines = 0;
        for page in contents_of(pdf) {
            for op in page.lines() {
                let parts: Vec<&str> = op.split(' ').collect();
                if op.starts_with("BT ") {
                    // BT /F1 10 Tf x y Td (...) Tj ET
                    let font = match parts[1] {
                        "/F1" => Font::Regular,
                        "/F2" => Font::Bold,
                        "/F3" => Font::Mono,
                        other => panic!("unknown font {other}"),
                    };
                    let size: f64 = parts[2].parse().unwrap();
                    let (x, y): (f64, f64) = (parts[4].parse().unwrap(), parts[5].parse().unwrap());
                    let text = &op[op.find(" Td ").unwrap() + 4..op.rfind(" Tj ET").unwrap()];
                    let width = points(font.text_width(&unescape(text)), size);
                    assert!(x >= MARGIN && x + width <= right, "{op}: overflows the text width");
                    let body = y - size * 0.25 >= BOTTOM && y + size <= TOP + 0.01;
                    assert!(body || FOOTER_BASELINES.contains(&y), "{op}: outside the body and footer");
                    lines += 1;
                } else if op.ends_with(" Do Q") {
                    // q w 0 0 h x y cm /ImN Do Q
                    let n: Vec<f64> = parts[1..7].iter().map(|p| p.parse().unwrap()).collect();
                    assert!(n[0] <= IMAGE_MAX_WIDTH && n[4] >= MARGIN && n[4] + n[0] <= right, "{op}");
                    assert!(n[5] >= BOTTOM && n[5] + n[3] <= TOP + 0.01, "{op}");
                }
            }
        }
        assert!(lines > 500);
    }

    #[test]
    fn text_is_escaped() {
        let mut pdf = Pdf::new("Exhibit (A) \\ 1");
        pdf.paragraph("Exhibit (A) at C:\\DVR\\ch1 :) (");
        pdf.mono(r"ffmpeg -i in.dav -vf 'select=eq(n\,41)' out.png");
        let bytes = pdf.finish();
        let objects = parse(&bytes);
        assert!(objects[2].dict.contains(r"/Title (Exhibit \(A\) \\ 1)"));
        let page = &page_contents(&objects)[0];
        assert!(page.contains(r"(Exhibit \(A\) at C:\\DVR\\ch1 :\) \() Tj"), "{page}");
        assert!(page.contains(r"(ffmpeg -i in.dav -vf 'select=eq\(n\\,41\)' out.png) Tj"), "{page}");
    }

    #[test]
    fn characters_outside_winansi_become_question_marks() {
        assert_eq!(encode("Ab é€ “x” – 日本 😀 e\u{301}\u{7}"), b"Ab \xE9\x80 \x93x\x94 \x96 ?? ? e??".to_vec());
        let mut pdf = Pdf::new("Übergabe – 日本");
        pdf.paragraph("Übergabe € 日本");
        let bytes = pdf.finish();
        let objects = parse(&bytes);
        assert!(objects[2].dict.contains("/Title <FEFF00DC006200650072006700610062006500202013002065E5672C>"));
        assert!(page_contents(&objects)[0].contains(r"(\334bergabe \200 ??) Tj"));
    }

    #[test]
    fn output_is_deterministic() {
        assert_eq!(sample_report().finish(), sample_report().finish());
    }

    #[test]
    fn wrapped_lines_fit_and_keep_every_word() {
        let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let huge = "ab".repeat(200);
        let text = format!("{} SHA-256 {hash} and a path {huge} end", filler(1));
        let max_units = units_for(TEXT_WIDTH, BODY.size);
        let lines = wrap_text(&text, BODY.font, BODY.size, TEXT_WIDTH);
        assert!(lines.len() >= 4);
        for line in &lines {
            assert!(Font::Regular.text_width(line) <= max_units, "too wide: {}", String::from_utf8_lossy(line));
        }
        // The hash fits on one line, so it must not be split; the huge token must be.
        assert!(lines.iter().any(|l| find(l, hash.as_bytes()).is_some()), "hash split");
        assert!(!lines.iter().any(|l| find(l, huge.as_bytes()).is_some()));
        let strip = |s: &[u8]| s.iter().filter(|b| **b != b' ').copied().collect::<Vec<u8>>();
        assert_eq!(strip(&lines.concat()), strip(text.as_bytes()));
        // Greedy: no line could have taken the next line's first word.
        for pair in lines.windows(2) {
            let next_word = pair[1].split(|&b| b == b' ').next().unwrap();
            let joined = Font::Regular.text_width(&pair[0]) + 278 + Font::Regular.text_width(next_word);
            assert!(joined > max_units || pair[1].is_empty());
        }
        assert!(wrap_text(" \t ", BODY.font, BODY.size, TEXT_WIDTH).is_empty());
        assert_eq!(wrap_text("a\n\nb", BODY.font, BODY.size, TEXT_WIDTH), vec![b"a".to_vec(), vec![], b"b".to_vec()]);
    }

    #[test]
    fn mono_keeps_spaces_expands_tabs_and_wraps_by_columns() {
        assert_eq!(MONO_COLUMNS, 103);
        let long = "x".repeat(250);
        let lines = wrap_mono(&format!("  {{\r\n\t\"a\":\t1\n{long}\n"), MONO_COLUMNS);
        assert_eq!(lines[0], b"  {");
        assert_eq!(lines[1], b"        \"a\":    1");
        assert_eq!(lines[2..].iter().map(Vec::len).collect::<Vec<_>>(), vec![103, 103, 44]);
    }

    #[test]
    fn heading_is_kept_with_the_next_line() {
        let mut pdf = Pdf::new("t");
        pdf.paragraph("first");
        // The heading alone would fit, but not together with one line of body text.
        pdf.y = BOTTOM + HEADING_GAP + HEADING.leading + 5.0;
        pdf.heading("2. Processing");
        pdf.paragraph("second");
        let pages = contents_of(pdf);
        assert_eq!(pages.len(), 2);
        assert!(pages[1].contains("(2. Processing) Tj") && pages[1].contains("/F2 14 Tf"));
        // The heading starts the new page at the top, with no gap above.
        assert!(pages[1].contains(&format!("{} {} Td (2. Processing)", num(MARGIN), num(TOP - HEADING.size))));
    }

    #[test]
    fn pictures_are_scaled_down_never_up_and_captioned() {
        let mut pdf = Pdf::new("t");
        pdf.image(&[9u8; 300 * 10 * 3], 300, 10, "wide");
        pdf.image(&[9u8; 16 * 9 * 3], 16, 9, "small");
        let bytes = pdf.finish();
        let objects = parse(&bytes);
        let page = &page_contents(&objects)[0];
        assert!(page.contains(&format!("q 240 0 0 8 50 {} cm /Im1 Do Q", num(TOP - 8.0))), "{page}");
        assert!(page.contains("q 16 0 0 9 50 ") && page.contains("/Im2 Do Q"));
        assert!(page.contains("/F1 8 Tf") && page.contains("(wide) Tj") && page.contains("(small) Tj"));
        assert_eq!(objects[6].stream.as_ref().unwrap().len(), 9000);
        assert!(objects[6].dict.contains("/Width 300 /Height 10 "));
    }

    #[test]
    fn a_bad_picture_leaves_a_visible_placeholder() {
        let mut pdf = Pdf::new("t");
        pdf.image(&[0u8; 10], 2, 2, "Figure 2");
        pdf.image(&[], 0, 5, "Figure 3");
        let bytes = pdf.finish();
        let objects = parse(&bytes);
        assert!(!objects.iter().any(|o| o.dict.contains("/Subtype /Image")));
        let page = &page_contents(&objects)[0];
        assert!(page.contains("([picture not embedded: 2x2 RGB8 needs 12 bytes, 10 given]) Tj"), "{page}");
        assert!(page.contains("(Figure 2) Tj") && page.contains("(Figure 3) Tj"));
    }

    #[test]
    fn page_breaks_never_leave_blank_pages() {
        let mut pdf = Pdf::new("t");
        pdf.page_break();
        pdf.paragraph("one");
        pdf.page_break();
        pdf.page_break();
        pdf.mono("\n\ntwo");
        pdf.page_break();
        let pages = contents_of(pdf);
        assert_eq!(pages.len(), 2);
        assert!(pages[0].contains("(one) Tj") && pages[1].contains("(two) Tj"));
        // Blank lines at the top of a page are dropped.
        assert!(pages[1].contains("Td (two)") && pages[1].contains(&num(TOP - MONO.size)));
    }

    #[test]
    fn long_footers_are_cut_to_two_lines() {
        let footer = FooterLayout::new(&"word ".repeat(300), 12);
        assert_eq!(footer.lines.len(), 2);
        assert!(footer.lines[1].ends_with(b"..."));
        let ops = footer.ops(3);
        assert!(ops.contains("(Page 3 of 12) Tj"));
    }

    #[test]
    fn numbers_have_no_exponent_or_negative_zero() {
        assert_eq!(num(595.28), "595.28");
        assert_eq!(num(50.0), "50");
        assert_eq!(num(0.1), "0.1");
        assert_eq!(num(-0.001), "0");
        assert_eq!(num(1e-9), "0");
    }

    /// Runs `tool args... file` if the tool is installed; `None` (with a skip message) if not.
    fn run_oracle(tool: &str, args: &[&str], file: &std::path::Path) -> Option<std::process::Output> {
        match Command::new(tool).args(args).arg(file).output() {
            Ok(out) => Some(out),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("skipping the {tool} oracle: {tool} is not installed");
                None
            }
            Err(e) => panic!("could not run {tool}: {e}"),
        }
    }

    /// Independent oracles, when installed: `qpdf --check` for the file structure, and poppler's
    /// `pdfinfo` and `pdftotext` (which complain on stderr about anything they had to repair)
    /// for the page count and the text a reader would extract. Each is skipped, with a
    /// message, when its tool is missing.
    #[test]
    fn external_checkers_accept_output() {
        let mut pdf = sample_report();
        pdf.paragraph("Übergabe – 5 € (receipt)");
        for i in 0..80 {
            pdf.paragraph(&filler(i));
        }
        let bytes = pdf.finish();
        let pages = page_contents(&parse(&bytes)).len();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.pdf");
        std::fs::write(&path, bytes).unwrap();
        let text = |out: &std::process::Output| {
            let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(out.status.success() && stderr.is_empty(), "{stdout}{stderr}");
            stdout.into_owned()
        };

        if let Some(out) = run_oracle("qpdf", &["--check"], &path) {
            let stdout = text(&out);
            assert!(stdout.contains("No syntax or stream encoding errors"), "{stdout}");
        }
        if let Some(out) = run_oracle("pdfinfo", &[], &path) {
            let info = text(&out);
            let reported = info.lines().find_map(|l| l.strip_prefix("Pages:")).map(str::trim);
            assert_eq!(reported, Some(pages.to_string().as_str()), "{info}");
            assert!(info.contains("Title:           Custody and processing report\n"), "{info}");
        }
        if let Some(out) = run_oracle("pdftotext", &["-enc", "UTF-8"], &path) {
            // pdftotext writes `report.txt` next to the file when no output is named.
            assert!(text(&out).is_empty());
            let extracted = std::fs::read_to_string(dir.path().join("report.txt")).unwrap();
            for expected in [
                "Items received",
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                "Übergabe – 5 € (receipt)",
                &format!("Page {pages} of {pages}"),
                "Case 24-1234 - ledger head 42:ab12",
            ] {
                assert!(extracted.contains(expected), "{expected:?} not in {extracted}");
            }
        }
    }
}
