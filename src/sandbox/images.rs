//! Real, small image files for avatars, headers and post attachments, drawn deterministically.
//!
//! The bytes are genuine PNG or JPEG (encoded by the `image` crate) so the engine's image
//! pipeline and vision prompts get something decodable; patterns and colours follow the key.

use std::io::Cursor;

use image::{ImageFormat, Rgb, RgbImage};

use super::rng::Rng;

/// An image file format the sandbox serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// `image/png`
    Png,
    /// `image/jpeg`
    Jpeg,
}

impl ImageKind {
    /// File extension without the dot.
    pub fn ext(self) -> &'static str {
        match self {
            ImageKind::Png => "png",
            ImageKind::Jpeg => "jpg",
        }
    }

    /// MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            ImageKind::Png => "image/png",
            ImageKind::Jpeg => "image/jpeg",
        }
    }

    /// The kind for a file extension.
    pub fn from_ext(ext: &str) -> Option<Self> {
        match ext {
            "png" => Some(ImageKind::Png),
            "jpg" | "jpeg" => Some(ImageKind::Jpeg),
            _ => None,
        }
    }
}

/// Draws a `width`×`height` picture from `key` in colours near `palette` and encodes it.
pub fn render(key: u64, palette: &[[u8; 3]], width: u32, height: u32, kind: ImageKind) -> Vec<u8> {
    let mut rng = Rng::for_parts(&[super::rng::stream::IMAGE, key]);
    let base = jitter(rng.pick(palette), &mut rng);
    let accent = jitter(rng.pick(palette), &mut rng);
    let pattern = rng.below(4);
    let cx = rng.f64() * f64::from(width);
    let cy = rng.f64() * f64::from(height);
    let radius = (0.2 + 0.3 * rng.f64()) * f64::from(width.min(height));
    let stripe = 4 + rng.below(10) as u32;
    let img = RgbImage::from_fn(width, height, |x, y| {
        let t = match pattern {
            // Diagonal gradient.
            0 => f64::from(x + y) / f64::from((width + height).max(1)),
            // Stripes.
            1 => f64::from(u8::from((x / stripe).is_multiple_of(2))),
            // A disc.
            2 => {
                let d = ((f64::from(x) - cx).powi(2) + (f64::from(y) - cy).powi(2)).sqrt();
                f64::from(u8::from(d < radius))
            }
            // Checkerboard.
            _ => f64::from(u8::from(((x / stripe) + (y / stripe)).is_multiple_of(2))),
        };
        Rgb(blend(base, accent, t))
    });
    let mut buf = Cursor::new(Vec::new());
    let format = match kind {
        ImageKind::Png => ImageFormat::Png,
        ImageKind::Jpeg => ImageFormat::Jpeg,
    };
    // Encoding an in-memory RGB8 buffer into Vec<u8> cannot fail for these formats; if it somehow
    // did, an empty body is served and the client sees an undecodable image rather than a panic.
    if img.write_to(&mut buf, format).is_err() {
        return Vec::new();
    }
    buf.into_inner()
}

fn jitter(c: [u8; 3], rng: &mut Rng) -> [u8; 3] {
    c.map(|v| (i64::from(v) + rng.range(-25, 25)).clamp(0, 255) as u8)
}

fn blend(a: [u8; 3], b: [u8; 3], t: f64) -> [u8; 3] {
    let mut out = [0u8; 3];
    for i in 0..3 {
        out[i] = (f64::from(a[i]) * (1.0 - t) + f64::from(b[i]) * t).round() as u8;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_and_jpeg_decode_to_the_requested_size() {
        let pal = [[10, 20, 30], [200, 100, 50]];
        for kind in [ImageKind::Png, ImageKind::Jpeg] {
            let bytes = render(99, &pal, 64, 48, kind);
            let img = image::load_from_memory(&bytes).expect("decodable");
            assert_eq!((img.width(), img.height()), (64, 48));
            assert_eq!(bytes, render(99, &pal, 64, 48, kind));
        }
    }
}
