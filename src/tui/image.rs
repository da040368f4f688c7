//! Images in the terminal as half blocks: each cell shows two stacked pixels (`▀` with the top
//! pixel as foreground and the bottom one as background), so any true-color terminal can show the
//! pictures the LLM saw without a graphics protocol.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Color;
use ratatui::widgets::Widget;

/// An image scaled down for the terminal: `width × height` RGB pixels (height is even: two per cell).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellImage {
    /// Width in pixels (= cells).
    pub width: u16,
    /// Height in pixels (= 2 × cells).
    pub height: u16,
    /// Row-major RGB triples.
    pub rgb: Vec<[u8; 3]>,
}

impl CellImage {
    /// Decodes image bytes and scales them to fit `cols × rows` cells, keeping the aspect ratio
    /// (a terminal cell is about twice as tall as wide, which two pixels per cell cancels out).
    /// `None` when the bytes are not a supported image.
    pub fn decode(bytes: &[u8], cols: u16, rows: u16) -> Option<Self> {
        let img = image::load_from_memory(bytes).ok()?;
        let fitted = img.resize(
            u32::from(cols.max(1)),
            u32::from(rows.max(1)) * 2,
            image::imageops::FilterType::Triangle,
        );
        let rgb = fitted.to_rgb8();
        let (w, h) = (rgb.width() as u16, rgb.height() as u16);
        let h_even = h + (h % 2);
        let mut px = Vec::with_capacity(usize::from(w) * usize::from(h_even));
        for y in 0..h_even {
            for x in 0..w {
                // An odd last row is padded by repeating the row above.
                let yy = u32::from(y.min(h.saturating_sub(1)));
                px.push(rgb.get_pixel(u32::from(x), yy).0);
            }
        }
        Some(Self {
            width: w,
            height: h_even,
            rgb: px,
        })
    }

    fn pixel(&self, x: u16, y: u16) -> [u8; 3] {
        self.rgb[usize::from(y) * usize::from(self.width) + usize::from(x)]
    }
}

/// Draws a [`CellImage`] at the top-left of the area, clipped to it.
pub struct HalfBlocks<'a>(pub &'a CellImage);

impl Widget for HalfBlocks<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let img = self.0;
        let cols = img.width.min(area.width);
        let rows = (img.height / 2).min(area.height);
        for cy in 0..rows {
            for cx in 0..cols {
                let [tr, tg, tb] = img.pixel(cx, cy * 2);
                let [br, bg, bb] = img.pixel(cx, cy * 2 + 1);
                if let Some(cell) = buf.cell_mut((area.x + cx, area.y + cy)) {
                    cell.set_char('▀')
                        .set_fg(Color::Rgb(tr, tg, tb))
                        .set_bg(Color::Rgb(br, bg, bb));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png)
            .expect("encode png");
        out.into_inner()
    }

    #[test]
    fn top_and_bottom_pixels_become_foreground_and_background() {
        // 2×2: red on top, blue below.
        let bytes = png(2, 2, |_, y| if y == 0 { [255, 0, 0] } else { [0, 0, 255] });
        let img = CellImage::decode(&bytes, 2, 1).expect("decodes");
        assert_eq!((img.width, img.height), (2, 2));
        let mut buf = Buffer::empty(Rect::new(0, 0, 4, 2));
        HalfBlocks(&img).render(Rect::new(1, 0, 3, 2), &mut buf);
        let cell = &buf[(1, 0)];
        assert_eq!(cell.symbol(), "▀");
        assert_eq!(cell.fg, Color::Rgb(255, 0, 0));
        assert_eq!(cell.bg, Color::Rgb(0, 0, 255));
        assert_eq!(buf[(0, 0)].symbol(), " ", "nothing drawn left of the area");
        assert_eq!(buf[(3, 0)].symbol(), " ", "nothing drawn past the image");
    }

    #[test]
    fn garbage_bytes_are_not_an_image() {
        assert!(CellImage::decode(b"not an image", 10, 10).is_none());
    }
}
