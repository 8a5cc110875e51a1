//! Faces found in sampled frames, joined into one track per face.
//!
//! Each live track carries a constant-velocity Kalman filter on its box (centre x, centre y,
//! width, height, each with its velocity in pixels per frame). At each detection frame the
//! filter predicts where every track's face is now; detections are matched to the predictions
//! greedily, the closest pairs first (overlap, or a centre near the predicted one for small
//! fast faces whose boxes no longer overlap); a track missed for more than `hold` detection
//! frames ends; an unmatched detection starts a track. Nothing found above the floor is thrown
//! away: every detection ends up in exactly one track.
//!
//! A track becomes keys of a moving redaction region ([`Track::keys`]): its detections' boxes,
//! grown by a margin so a face that moves between detection frames stays covered, with one key
//! extrapolated a stride before its first detection and one a stride after its last, so the
//! frames between the detection frame that missed it and the one that found it are covered too.

use super::Detection;

/// How detections become tracks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Boxes overlapping by at least this (intersection over union) may be the same face.
    pub iou: f32,
    /// Detection frames a track may go unseen and still continue.
    pub hold: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings { iou: 0.3, hold: 3 }
    }
}

/// One coordinate under a constant-velocity model: position, velocity (per frame), and their
/// covariance `[[pp, pv], [pv, vv]]`.
#[derive(Clone, Copy, Debug)]
struct Axis {
    p: f32,
    v: f32,
    pp: f32,
    pv: f32,
    vv: f32,
}

impl Axis {
    fn new(z: f32, pos_sd: f32, vel_sd: f32) -> Axis {
        Axis { p: z, v: 0.0, pp: pos_sd * pos_sd, pv: 0.0, vv: vel_sd * vel_sd }
    }

    /// Advance `dt` frames, with white-noise acceleration of spectral density `q`.
    fn predict(&mut self, dt: f32, q: f32) {
        let Axis { p, v, pp, pv, vv } = *self;
        self.p = p + v * dt;
        self.pp = pp + 2.0 * dt * pv + dt * dt * vv + q * dt * dt * dt / 3.0;
        self.pv = pv + dt * vv + q * dt * dt / 2.0;
        self.vv = vv + q * dt;
    }

    /// Take a measurement `z` of the position with variance `r`.
    fn update(&mut self, z: f32, r: f32) {
        let Axis { p, v, pp, pv, vv } = *self;
        let s = pp + r;
        let (kp, kv) = (pp / s, pv / s);
        let y = z - p;
        self.p = p + kp * y;
        self.v = v + kv * y;
        self.pp = pp - kp * pp;
        self.pv = pv - kp * pv;
        self.vv = vv - kv * pv;
    }
}

/// A track being followed.
#[derive(Clone, Debug)]
struct Live {
    id: u32,
    /// Centre x, centre y, width, height.
    axes: [Axis; 4],
    /// The frame the filter stands at.
    at: usize,
    hits: Vec<(usize, Detection)>,
    missed: usize,
}

/// The filter's noise, in proportion to the face's size `s` (a detector's box jitters by a few
/// percent of the face; faces speed up and slow down by a fraction of their size per frame).
fn noise(s: f32) -> (f32, f32, f32) {
    let s = s.max(4.0);
    let measurement = (0.05 * s).powi(2);
    let acceleration = (0.02 * s).powi(2);
    let initial_velocity = 0.15 * s;
    (measurement, acceleration, initial_velocity)
}

fn centre_form(d: &Detection) -> [f32; 4] {
    [(d.x1 + d.x2) / 2.0, (d.y1 + d.y2) / 2.0, d.width(), d.height()]
}

fn corner_form(c: [f32; 4], score: f32) -> Detection {
    let [x, y, w, h] = c;
    Detection { x1: x - w / 2.0, y1: y - h / 2.0, x2: x + w / 2.0, y2: y + h / 2.0, score }
}

impl Live {
    fn new(id: u32, frame: usize, d: Detection) -> Live {
        let c = centre_form(&d);
        let (r, _, v0) = noise(c[3]);
        let axes = c.map(|z| Axis::new(z, r.sqrt(), v0));
        Live { id, axes, at: frame, hits: vec![(frame, d)], missed: 0 }
    }

    fn size(&self) -> f32 {
        self.axes[2].p.max(self.axes[3].p)
    }

    /// The box the filter expects at `frame`.
    fn predicted(&self, frame: usize) -> Detection {
        let dt = frame.saturating_sub(self.at) as f32;
        let c = self.axes.map(|a| a.p + a.v * dt);
        corner_form([c[0], c[1], c[2].max(1.0), c[3].max(1.0)], 0.0)
    }

    fn observe(&mut self, frame: usize, d: Detection) {
        let dt = frame.saturating_sub(self.at) as f32;
        let (r, q, _) = noise(self.size());
        let z = centre_form(&d);
        for (a, z) in self.axes.iter_mut().zip(z) {
            a.predict(dt, q);
            a.update(z, r);
        }
        self.at = frame;
        self.hits.push((frame, d));
        self.missed = 0;
    }

    fn velocity(&self) -> [f32; 4] {
        self.axes.map(|a| a.v)
    }
}

/// How unlike a predicted box and a detection are: `None` when they cannot be the same face.
fn distance(predicted: &Detection, found: &Detection, min_iou: f32) -> Option<f32> {
    let iou = predicted.iou(found);
    let (pc, fc) = (centre_form(predicted), centre_form(found));
    let size = pc[2].max(pc[3]).max(fc[2].max(fc[3])).max(1.0);
    let apart = ((pc[0] - fc[0]).powi(2) + (pc[1] - fc[1]).powi(2)).sqrt() / size;
    // Sizes that differ by more than half are different faces, however close.
    let ratio = (pc[3] / fc[3].max(1.0)).max(fc[3] / pc[3].max(1.0));
    (ratio <= 2.0 && (iou >= min_iou || apart <= 0.75)).then_some(1.0 - iou + apart)
}

/// Detections joined into tracks, one detection frame at a time (frames in increasing order).
#[derive(Debug, Default)]
pub struct Tracker {
    settings: Settings,
    live: Vec<Live>,
    ended: Vec<Live>,
    next: u32,
}

impl Tracker {
    pub fn new(settings: Settings) -> Tracker {
        Tracker { settings, ..Tracker::default() }
    }

    /// What the detector found in `frame`.
    pub fn step(&mut self, frame: usize, found: &[Detection]) {
        let predicted: Vec<Detection> = self.live.iter().map(|t| t.predicted(frame)).collect();
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (ti, p) in predicted.iter().enumerate() {
            for (di, d) in found.iter().enumerate() {
                if let Some(cost) = distance(p, d, self.settings.iou) {
                    pairs.push((cost, ti, di));
                }
            }
        }
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (mut track_taken, mut found_taken) = (vec![false; self.live.len()], vec![false; found.len()]);
        for (_, ti, di) in pairs {
            if !track_taken[ti] && !found_taken[di] {
                track_taken[ti] = true;
                found_taken[di] = true;
                self.live[ti].observe(frame, found[di]);
            }
        }
        let hold = self.settings.hold;
        let mut still_live = Vec::with_capacity(self.live.len());
        for (t, taken) in std::mem::take(&mut self.live).into_iter().zip(track_taken) {
            let mut t = t;
            if !taken {
                t.missed += 1;
            }
            if t.missed > hold { self.ended.push(t) } else { still_live.push(t) }
        }
        self.live = still_live;
        for (d, taken) in found.iter().zip(found_taken) {
            if !taken {
                self.next += 1;
                self.live.push(Live::new(self.next, frame, *d));
            }
        }
    }

    /// Every track, in the order their faces first appeared, numbered from 1 in that order.
    pub fn finish(mut self) -> Vec<Track> {
        self.ended.append(&mut self.live);
        let mut tracks: Vec<Track> = self
            .ended
            .into_iter()
            .map(|t| {
                let velocity = t.velocity();
                Track { id: t.id, hits: t.hits, end_velocity: velocity }
            })
            .collect();
        tracks.sort_by_key(|t| (t.hits[0].0, t.id));
        for (i, t) in tracks.iter_mut().enumerate() {
            t.id = i as u32 + 1;
        }
        tracks
    }
}

/// One face followed through the frames it was found in.
#[derive(Clone, Debug, PartialEq)]
pub struct Track {
    pub id: u32,
    /// The frames the detector found it in, and its box there, in frame order.
    pub hits: Vec<(usize, Detection)>,
    /// The filter's velocity (centre x, centre y, width, height per frame) at its last detection.
    end_velocity: [f32; 4],
}

/// A box as a redaction key: `[x, y, w, h]` in whole pixels.
pub type KeyBox = [i64; 4];

impl Track {
    pub fn first(&self) -> usize {
        self.hits[0].0
    }

    pub fn last(&self) -> usize {
        self.hits[self.hits.len() - 1].0
    }

    pub fn best(&self) -> f32 {
        self.hits.iter().map(|h| h.1.score).fold(0.0, f32::max)
    }

    pub fn least(&self) -> f32 {
        self.hits.iter().map(|h| h.1.score).fold(1.0, f32::min)
    }

    pub fn mean(&self) -> f32 {
        self.hits.iter().map(|h| h.1.score).sum::<f32>() / self.hits.len() as f32
    }

    /// The keys of the redaction region that covers this face: each detection's box grown by
    /// `margin` (1.3 makes it 30 % wider and higher about its centre), plus one key extrapolated
    /// `stride` frames before the first detection and one `stride` after the last (within
    /// `frames` `lo..=hi`), clipped to the `width` × `height` picture. Keys whose box falls
    /// wholly outside the picture are left out.
    pub fn keys(
        &self,
        stride: usize,
        (lo, hi): (usize, usize),
        margin: f32,
        (width, height): (u32, u32),
    ) -> Vec<(usize, KeyBox)> {
        let grow = |c: [f32; 4]| [c[0], c[1], c[2] * margin, c[3] * margin];
        let mut keys: Vec<(usize, [f32; 4])> = Vec::new();
        let first = self.first();
        if first > lo && stride > 0 {
            // Back along the motion between the first two detections.
            let before = first.saturating_sub(stride).max(lo);
            let c = centre_form(&self.hits[0].1);
            let v = match self.hits.get(1) {
                Some((f, d)) => {
                    let (c1, dt) = (centre_form(d), (*f - first) as f32);
                    [0, 1, 2, 3].map(|i| (c1[i] - c[i]) / dt)
                }
                None => [0.0; 4],
            };
            let dt = (first - before) as f32;
            keys.push((before, [0, 1, 2, 3].map(|i| c[i] - v[i] * dt)));
        }
        keys.extend(self.hits.iter().map(|(f, d)| (*f, centre_form(d))));
        let last = self.last();
        if last < hi && stride > 0 {
            let after = (last + stride).min(hi);
            let c = centre_form(&self.hits[self.hits.len() - 1].1);
            let dt = (after - last) as f32;
            keys.push((after, [0, 1, 2, 3].map(|i| c[i] + self.end_velocity[i] * dt)));
        }
        keys.into_iter()
            .filter_map(|(f, c)| {
                let [cx, cy, w, h] = grow(c);
                let (w, h) = (w.max(2.0), h.max(2.0));
                let x0 = (cx - w / 2.0).floor().max(0.0) as i64;
                let y0 = (cy - h / 2.0).floor().max(0.0) as i64;
                let x1 = ((cx + w / 2.0).ceil() as i64).min(width as i64);
                let y1 = ((cy + h / 2.0).ceil() as i64).min(height as i64);
                (x1 > x0 && y1 > y0).then_some((f, [x0, y0, x1 - x0, y1 - y0]))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: f32, y: f32, size: f32, score: f32) -> Detection {
        Detection { x1: x, y1: y, x2: x + size, y2: y + size, score }
    }

    #[test]
    fn the_filter_learns_a_steady_velocity_and_predicts_along_it() {
        let mut a = Axis::new(0.0, 1.0, 5.0);
        for k in 1..=10 {
            a.predict(4.0, 0.01);
            a.update(k as f32 * 12.0, 1.0);
        }
        // 12 pixels every 4 frames: 3 per frame.
        assert!((a.v - 3.0).abs() < 0.2, "{a:?}");
        assert!((a.p - 120.0).abs() < 1.0, "{a:?}");
    }

    #[test]
    fn two_faces_crossing_paths_keep_their_own_tracks() {
        let mut tracker = Tracker::new(Settings::default());
        // One moves right along y=100, the other left along y=160; 40 px faces, 6 px per frame,
        // seen every 5 frames: 30 px between detections, so their boxes barely overlap.
        for step in 0..20 {
            let f = step * 5;
            let a = face(20.0 + 6.0 * f as f32, 100.0, 40.0, 0.9);
            let b = face(620.0 - 6.0 * f as f32, 160.0, 40.0, 0.8);
            tracker.step(f, &[b, a]);
        }
        let tracks = tracker.finish();
        assert_eq!(tracks.len(), 2, "{tracks:#?}");
        for t in &tracks {
            assert_eq!(t.hits.len(), 20);
            let ys: Vec<f32> = t.hits.iter().map(|h| h.1.y1).collect();
            assert!(ys.iter().all(|&y| y == ys[0]), "a track jumped between faces: {ys:?}");
        }
        assert_eq!(tracks.iter().map(|t| t.id).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn a_face_missed_for_a_few_detection_frames_keeps_its_track_and_longer_ends_it() {
        let mut tracker = Tracker::new(Settings { iou: 0.3, hold: 2 });
        let at = |f: usize| face(100.0 + 2.0 * f as f32, 50.0, 60.0, 0.7);
        for f in [0, 5, 10] {
            tracker.step(f, &[at(f)]);
        }
        // Missed twice (held), found again: the same track.
        tracker.step(15, &[]);
        tracker.step(20, &[]);
        tracker.step(25, &[at(25)]);
        // Missed three times: ended; found again later, a new track.
        for f in [30, 35, 40] {
            tracker.step(f, &[]);
        }
        tracker.step(45, &[at(45)]);
        let tracks = tracker.finish();
        assert_eq!(tracks.len(), 2, "{tracks:#?}");
        assert_eq!(tracks[0].hits.iter().map(|h| h.0).collect::<Vec<_>>(), vec![0, 5, 10, 25]);
        assert_eq!(tracks[1].first(), 45);
    }

    #[test]
    fn every_detection_lands_in_exactly_one_track() {
        let mut tracker = Tracker::new(Settings::default());
        let mut given = 0;
        for f in 0..30 {
            let mut found = vec![face(10.0 + f as f32, 10.0, 30.0, 0.9)];
            if f % 7 == 0 {
                // A one-off weak detection elsewhere.
                found.push(face(300.0, 200.0 + f as f32 * 20.0, 20.0, 0.25));
            }
            given += found.len();
            tracker.step(f, &found);
        }
        let tracks = tracker.finish();
        assert_eq!(tracks.iter().map(|t| t.hits.len()).sum::<usize>(), given);
        let weak: Vec<&Track> = tracks.iter().filter(|t| t.best() < 0.5).collect();
        assert_eq!(weak.len(), 5, "{tracks:#?}");
    }

    #[test]
    fn keys_grow_the_box_and_reach_a_stride_beyond_both_ends() {
        let mut tracker = Tracker::new(Settings::default());
        for f in [10, 15, 20] {
            tracker.step(f, &[face(100.0 + 2.0 * f as f32, 100.0, 40.0, 0.9)]);
        }
        let t = &tracker.finish()[0];
        let keys = t.keys(5, (0, 100), 1.5, (640, 360));
        assert_eq!(keys.iter().map(|k| k.0).collect::<Vec<_>>(), vec![5, 10, 15, 20, 25]);
        // The box at frame 10 (x 120-160, y 100-140) grown 1.5 times about its centre.
        assert_eq!(keys[1].1, [110, 90, 60, 60]);
        // Before the first: 10 px to the left (2 px a frame); after the last, near 10 px right
        // of the box at frame 20 (x 130 grown).
        assert_eq!(keys[0].1[0], 100);
        assert!((keys[4].1[0] - 140).abs() <= 2, "{keys:?}");
        // Clipped to the picture and to the frames there are.
        let keys = t.keys(15, (8, 22), 1.5, (150, 360));
        assert_eq!(keys.iter().map(|k| k.0).collect::<Vec<_>>(), vec![8, 10, 15, 20, 22]);
        assert!(keys.iter().all(|k| k.1[0] + k.1[2] <= 150), "{keys:?}");
    }
}
