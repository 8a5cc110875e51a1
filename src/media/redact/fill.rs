//! What hides a region: the mask of covered pixels, and solid, pixelated or blurred fill on
//! 8-bit planar YUV pictures; mute and bleep on audio samples.

use std::f64::consts::TAU;

use super::spec::{AudioAction, Fill, Rect, Shape};

/// A picture's covered pixels, at luma resolution: 1 = hide.
pub struct Mask {
    pub w: usize,
    pub h: usize,
    pub bits: Vec<u8>,
    /// Bounding box of the covered pixels, `[x0, x1) × [y0, y1)`; empty when nothing is covered.
    pub bounds: (usize, usize, usize, usize),
}

impl Mask {
    pub fn new(w: usize, h: usize) -> Mask {
        Mask { w, h, bits: vec![0; w * h], bounds: (w, h, 0, 0) }
    }

    pub fn is_empty(&self) -> bool {
        self.bounds.0 >= self.bounds.2
    }

    /// Mark the rectangle, or the ellipse inscribed in it.
    pub fn paint(&mut self, r: Rect, shape: Shape, value: u8) {
        let (x0, y0, x1, y1) = (r.x0 as usize, r.y0 as usize, (r.x1 as usize).min(self.w), (r.y1 as usize).min(self.h));
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        let (cx, cy) = ((x0 + x1) as f64 / 2.0, (y0 + y1) as f64 / 2.0);
        // Half a pixel more than the radius: a pixel the outline touches is covered.
        let (rx, ry) = ((x1 - x0) as f64 / 2.0 + 0.5, (y1 - y0) as f64 / 2.0 + 0.5);
        for y in y0..y1 {
            let row = &mut self.bits[y * self.w..(y + 1) * self.w];
            match shape {
                Shape::Rect => row[x0..x1].fill(value),
                Shape::Ellipse => {
                    let dy = (y as f64 + 0.5 - cy) / ry;
                    let half = (1.0 - dy * dy).max(0.0).sqrt() * rx;
                    let a = ((cx - half).floor().max(x0 as f64)) as usize;
                    let b = ((cx + half).ceil().min(x1 as f64)) as usize;
                    if a < b {
                        row[a..b].fill(value);
                    }
                }
            }
        }
        if value == 1 {
            self.grow(x0, y0, x1, y1);
        }
    }

    fn grow(&mut self, x0: usize, y0: usize, x1: usize, y1: usize) {
        let b = &mut self.bounds;
        *b = (b.0.min(x0), b.1.min(y0), b.2.max(x1), b.3.max(y1));
    }

    /// Cover every pixel `keep` leaves out (inverse regions: hide all but these areas).
    pub fn cover_outside(&mut self, keep: &Mask) {
        for (m, k) in self.bits.iter_mut().zip(&keep.bits) {
            if *k == 0 {
                *m = 1;
            }
        }
        self.bounds = (0, 0, self.w, self.h);
    }
}

/// One plane of a picture: its pixels, row stride, size, and subsampling against luma.
pub struct Plane<'a> {
    pub data: &'a mut [u8],
    pub stride: usize,
    pub w: usize,
    pub h: usize,
    pub shift_x: u32,
    pub shift_y: u32,
}

impl Plane<'_> {
    /// Whether the plane pixel covers a masked luma pixel (chroma covers several).
    fn covered(&self, mask: &Mask, x: usize, y: usize) -> bool {
        let (sx, sy) = (1usize << self.shift_x, 1usize << self.shift_y);
        let (lx0, ly0) = (x * sx, y * sy);
        (ly0..(ly0 + sy).min(mask.h)).any(|ly| (lx0..(lx0 + sx).min(mask.w)).any(|lx| mask.bits[ly * mask.w + lx] != 0))
    }

    /// The plane rectangle over the mask's bounds grown by `margin` luma pixels.
    fn window(&self, mask: &Mask, margin: usize) -> (usize, usize, usize, usize) {
        let (x0, y0, x1, y1) = mask.bounds;
        (
            x0.saturating_sub(margin) >> self.shift_x,
            y0.saturating_sub(margin) >> self.shift_y,
            ((x1 + margin).min(mask.w)).div_ceil(1 << self.shift_x).min(self.w),
            ((y1 + margin).min(mask.h)).div_ceil(1 << self.shift_y).min(self.h),
        )
    }
}

/// Hide the masked pixels of one plane. `neutral` is the value solid fill writes; `size` is
/// the largest region's size in luma pixels (pixelate's blocks and blur's radius grow with it).
pub fn fill_plane(plane: &mut Plane, mask: &Mask, fill: Fill, neutral: u8, size: usize) {
    if mask.is_empty() {
        return;
    }
    match fill {
        Fill::Solid => {
            let (x0, y0, x1, y1) = plane.window(mask, 0);
            for y in y0..y1 {
                for x in x0..x1 {
                    if plane.covered(mask, x, y) {
                        plane.data[y * plane.stride + x] = neutral;
                    }
                }
            }
        }
        Fill::Pixelate => {
            // Blocks of at least 16 luma pixels, and no fewer than about six across the region.
            let block = (size.div_ceil(6)).max(16);
            let (bx, by) = ((block >> plane.shift_x).max(2), (block >> plane.shift_y).max(2));
            let (x0, y0, x1, y1) = plane.window(mask, 0);
            // The grid starts at the covered area's corner, so a block never straddles its edge.
            let mut y = y0;
            while y < y1 {
                let ye = (y + by).min(y1);
                let mut x = x0;
                while x < x1 {
                    let xe = (x + bx).min(x1);
                    let (mut sum, mut n) = (0u64, 0u64);
                    for yy in y..ye {
                        for xx in x..xe {
                            sum += plane.data[yy * plane.stride + xx] as u64;
                            n += 1;
                        }
                    }
                    let mean = (sum / n.max(1)) as u8;
                    for yy in y..ye {
                        for xx in x..xe {
                            if plane.covered(mask, xx, yy) {
                                plane.data[yy * plane.stride + xx] = mean;
                            }
                        }
                    }
                    x = xe;
                }
                y = ye;
            }
        }
        Fill::Blur => {
            // Three box blurs approach a Gaussian; the radius is a quarter of the region, at least 8.
            let radius = (size / 4).max(8);
            let (rx, ry) = ((radius >> plane.shift_x).max(2), (radius >> plane.shift_y).max(2));
            let (x0, y0, x1, y1) = plane.window(mask, radius * 3);
            let (w, h) = (x1 - x0, y1 - y0);
            let mut buf: Vec<u32> = Vec::with_capacity(w * h);
            for y in y0..y1 {
                buf.extend(plane.data[y * plane.stride + x0..y * plane.stride + x1].iter().map(|&v| v as u32));
            }
            for _ in 0..3 {
                box_pass(&mut buf, w, h, rx, true);
                box_pass(&mut buf, w, h, ry, false);
            }
            for y in 0..h {
                for x in 0..w {
                    if plane.covered(mask, x0 + x, y0 + y) {
                        plane.data[(y0 + y) * plane.stride + x0 + x] = buf[y * w + x].min(255) as u8;
                    }
                }
            }
        }
    }
}

/// One box-blur pass along rows (`horizontal`) or columns, edges clamped.
fn box_pass(buf: &mut [u32], w: usize, h: usize, r: usize, horizontal: bool) {
    let (lines, len) = if horizontal { (h, w) } else { (w, h) };
    let at = |line: usize, i: usize| if horizontal { line * w + i } else { i * w + line };
    let mut src = vec![0u32; len];
    let span = (2 * r + 1) as u32;
    for line in 0..lines {
        for (i, s) in src.iter_mut().enumerate() {
            *s = buf[at(line, i)];
        }
        let get = |i: isize| src[i.clamp(0, len as isize - 1) as usize];
        let mut sum: u32 = (-(r as isize)..=r as isize).map(get).sum();
        for i in 0..len {
            buf[at(line, i)] = (sum + span / 2) / span;
            sum += get(i as isize + r as isize + 1);
            sum -= get(i as isize - r as isize);
        }
    }
}

/// Mute or bleep the samples of `[from, to)` (sample numbers) that fall in this frame, which
/// starts at sample `first` and holds `count` samples per channel. `planar_f32`: one f32 plane
/// per channel; otherwise packed 16-bit.
#[allow(clippy::too_many_arguments)]
pub fn audio_range(
    planes: &mut [&mut [u8]],
    planar_f32: bool,
    channels: usize,
    first: i64,
    count: usize,
    from: i64,
    to: i64,
    action: AudioAction,
    rate: u32,
) -> u64 {
    let a = (from - first).clamp(0, count as i64) as usize;
    let b = (to - first).clamp(0, count as i64) as usize;
    if a >= b {
        return 0;
    }
    let value = |i: usize| -> f64 {
        match action {
            AudioAction::Mute => 0.0,
            // A 1 kHz tone at a quarter of full scale.
            AudioAction::Bleep => 0.25 * (TAU * 1000.0 * (first + i as i64) as f64 / rate as f64).sin(),
        }
    };
    for i in a..b {
        let v = value(i);
        if planar_f32 {
            for plane in planes.iter_mut().take(channels) {
                plane[i * 4..i * 4 + 4].copy_from_slice(&(v as f32).to_ne_bytes());
            }
        } else {
            let s = (v * 32767.0).round() as i16;
            for c in 0..channels {
                let o = (i * channels + c) * 2;
                planes[0][o..o + 2].copy_from_slice(&s.to_ne_bytes());
            }
        }
    }
    (b - a) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(data: &mut [u8], w: usize, h: usize) -> Plane<'_> {
        Plane { data, stride: w, w, h, shift_x: 0, shift_y: 0 }
    }

    #[test]
    fn solid_fill_covers_exactly_the_mask() {
        let (w, h) = (32, 16);
        let mut px: Vec<u8> = (0..w * h).map(|i| (i * 7 % 251) as u8).collect();
        let orig = px.clone();
        let mut m = Mask::new(w, h);
        m.paint(Rect { x0: 4, y0: 2, x1: 10, y1: 8 }, Shape::Rect, 1);
        fill_plane(&mut plane(&mut px, w, h), &m, Fill::Solid, 16, 6);
        for y in 0..h {
            for x in 0..w {
                let inside = (4..10).contains(&x) && (2..8).contains(&y);
                assert_eq!(px[y * w + x] == 16, inside || orig[y * w + x] == 16, "({x},{y})");
            }
        }
    }

    #[test]
    fn ellipses_leave_the_corners_of_their_box() {
        let mut m = Mask::new(100, 100);
        m.paint(Rect { x0: 0, y0: 0, x1: 100, y1: 100 }, Shape::Ellipse, 1);
        assert_eq!(m.bits[0], 0);
        assert_eq!(m.bits[50 * 100 + 50], 1);
        assert_eq!(m.bits[50 * 100], 1);
    }

    #[test]
    fn blur_and_pixelate_flatten_detail() {
        let (w, h) = (64, 64);
        for fill in [Fill::Blur, Fill::Pixelate] {
            // A checkerboard: the most detail there is.
            let mut px: Vec<u8> = (0..w * h).map(|i| if (i % w + i / w) % 2 == 0 { 0 } else { 255 }).collect();
            let mut m = Mask::new(w, h);
            m.paint(Rect { x0: 0, y0: 0, x1: 64, y1: 64 }, Shape::Rect, 1);
            fill_plane(&mut plane(&mut px, w, h), &m, fill, 0, 64);
            let edges: u32 = (0..h)
                .flat_map(|y| (1..w).map(move |x| (y, x)))
                .map(|(y, x)| px[y * w + x].abs_diff(px[y * w + x - 1]) as u32)
                .sum();
            assert!(edges < (w * h) as u32, "{fill:?}: {edges}");
        }
    }

    #[test]
    fn audio_ranges_are_sample_accurate() {
        let mut data = vec![0u8; 100 * 2];
        for i in 0..100 {
            data[i * 2..i * 2 + 2].copy_from_slice(&1000i16.to_ne_bytes());
        }
        let n = audio_range(&mut [&mut data], false, 1, 1000, 100, 1010, 1020, AudioAction::Mute, 8000);
        assert_eq!(n, 10);
        let s = |i: usize| i16::from_ne_bytes([data[i * 2], data[i * 2 + 1]]);
        assert_eq!((s(9), s(10), s(19), s(20)), (1000, 0, 0, 1000));
    }
}
