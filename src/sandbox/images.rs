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
    // The gradient's colours depend on x + y only: blended once per diagonal, not per pixel.
    let diagonal: Vec<Rgb<u8>> = if pattern == 0 {
        (0..width + height)
            .map(|d| {
                let t = f64::from(d) / f64::from((width + height).max(1));
                Rgb(blend(base, accent, t))
            })
            .collect()
    } else {
        Vec::new()
    };
    let (base, accent) = (Rgb(base), Rgb(accent));
    let pick = |accented: bool| if accented { accent } else { base };
    let img = RgbImage::from_fn(width, height, |x, y| match pattern {
        // Diagonal gradient.
        0 => diagonal[(x + y) as usize],
        // Stripes.
        1 => pick((x / stripe).is_multiple_of(2)),
        // A disc.
        2 => {
            let d = ((f64::from(x) - cx).powi(2) + (f64::from(y) - cy).powi(2)).sqrt();
            pick(d < radius)
        }
        // Checkerboard.
        _ => pick(((x / stripe) + (y / stripe)).is_multiple_of(2)),
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

    /// Rendering is part of the sandbox's determinism (same seed, same bytes): these digests were
    /// taken before the per-pixel blend was replaced by a per-diagonal table and a choice of two
    /// colours, which must not change a byte.
    #[test]
    fn the_pictures_are_unchanged() {
        let pal = [[10, 20, 30], [200, 100, 50], [90, 200, 120]];
        let digest = |key, kind| {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(render(key, &pal, 32, 32, kind)))
        };
        let got: Vec<String> = (0..8u64)
            .map(|k| {
                digest(
                    k,
                    if k % 2 == 0 {
                        ImageKind::Png
                    } else {
                        ImageKind::Jpeg
                    },
                )
            })
            .collect();
        assert_eq!(got, EXPECTED_DIGESTS);
    }

    /// Keys 0–7: all four patterns (gradient: 4; stripes: 1, 5; disc: 0, 2; checks: 3, 6, 7).
    const EXPECTED_DIGESTS: [&str; 8] = [
        "3ca6644762b0a444fc1351c04fcb869d998d861a66698f3b7d5802aaa5e9f3bd",
        "b654a97ea73ea99197fb7fd52f396ab32464618502869952961fbcf0f6e8f49b",
        "4c8afda2abb1c3f1d235fb90a37cdea3485a69962f950a3b984939925896e47d",
        "c007b1e853cea2ad1c116598ef73108d0e7db7ec45fa680d403f59e992adc539",
        "2555930f4387377aa141f9b6ff4418bc30239e967ba5ab96773a495561eea2c6",
        "8dd969beaeb5c015c249efee1933a9ecdab6e36ee933eef5d6b427563a75d4f7",
        "9cf456ef42a997890a55f7210227424d3ececf02356be14bdd304b77cfb6d42e",
        "bf06b14456b623d2ca93bf59794ca3f3f11c646cb592953cc627886bcc1d522b",
    ];
}
