//go:build ignore

// Command logos_gen draws the widget's logos and tour images into
// widget/amo/images: two interlocking rings (a "связка", a link) in the brand
// colours on white. The tour image adds a schematic of the settings page (tabs,
// two green connection statuses, the start button); it carries no text, so one
// picture serves every locale. Run from the repository root:
//
//	go run widget/logos_gen.go
package main

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
)

var (
	brand  = color.RGBA{0x13, 0x75, 0xab, 0xff}
	accent = color.RGBA{0x2b, 0xb6, 0x73, 0xff}
	white  = color.RGBA{0xff, 0xff, 0xff, 0xff}
	paper  = color.RGBA{0xf4, 0xf6, 0xf9, 0xff}
	line   = color.RGBA{0xdd, 0xe2, 0xe8, 0xff}
	ink    = color.RGBA{0xc3, 0xcb, 0xd5, 0xff}
)

// Sizes amoCRM requires: the five logos (integrations/structure) and the tour
// pictures, 1188×616 (integrations/requirements §4.3).
func main() {
	dir := filepath.Join("widget", "amo", "images")
	for name, size := range map[string][2]int{
		"logo.png": {130, 100}, "logo_main.png": {400, 272}, "logo_medium.png": {240, 84},
		"logo_min.png": {84, 84}, "logo_small.png": {108, 108},
	} {
		img := canvas(size[0], size[1], white)
		rings(img, img.Bounds())
		save(filepath.Join(dir, name), img)
	}
	tour := drawTour(1188, 616)
	save(filepath.Join(dir, "tour_ru.png"), tour)
	save(filepath.Join(dir, "tour_en.png"), tour)
}

func canvas(w, h int, bg color.RGBA) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	fill(img, img.Bounds(), bg)
	return img
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

// rings paints two interlocking rings centred in box, anti-aliased by distance.
func rings(img *image.RGBA, box image.Rectangle) {
	w, h := float64(box.Dx()), float64(box.Dy())
	r := math.Min(w/4.2, h/2.6)
	thick := math.Max(r/4.5, 2)
	cx, cy := float64(box.Min.X)+w/2, float64(box.Min.Y)+h/2
	c1, c2 := cx-r*0.55, cx+r*0.55
	for y := box.Min.Y; y < box.Max.Y; y++ {
		for x := box.Min.X; x < box.Max.X; x++ {
			px, py := float64(x)+0.5, float64(y)+0.5
			col := img.RGBAAt(x, y)
			if a := ring(px, py, c2, cy, r, thick); a > 0 {
				col = blend(col, accent, a)
			}
			if a := ring(px, py, c1, cy, r, thick); a > 0 {
				// The first ring passes under the second in the upper half: a chain link.
				if !(py < cy && ring(px, py, c2, cy, r, thick) > 0.5) {
					col = blend(col, brand, a)
				}
			}
			img.SetRGBA(x, y, col)
		}
	}
}

// drawTour is the logo on the left and, on the right, a schematic of the
// settings page: a row of tabs, two status rows with green dots, a button.
func drawTour(w, h int) *image.RGBA {
	img := canvas(w, h, paper)
	rings(img, image.Rect(40, 150, 440, 466))

	page := image.Rect(500, 70, w-60, h-70)
	fill(img, page.Inset(-1), line)
	fill(img, page, white)
	fill(img, image.Rect(page.Min.X, page.Min.Y, page.Max.X, page.Min.Y+56), paper)
	for i := 0; i < 4; i++ {
		tab := image.Rect(page.Min.X+24+i*150, page.Min.Y+18, page.Min.X+24+i*150+126, page.Min.Y+38)
		c := ink
		if i == 0 {
			c = brand
		}
		fill(img, tab, c)
	}
	for i := 0; i < 2; i++ {
		top := page.Min.Y + 96 + i*84
		row := image.Rect(page.Min.X+24, top, page.Max.X-24, top+60)
		fill(img, row.Inset(-1), line)
		fill(img, row, white)
		dot(img, float64(row.Min.X+34), float64(top+30), 12, accent)
		fill(img, image.Rect(row.Min.X+64, top+18, row.Min.X+330, top+28), ink)
		fill(img, image.Rect(row.Min.X+64, top+36, row.Min.X+230, top+44), line)
	}
	fill(img, image.Rect(page.Min.X+24, page.Max.Y-84, page.Min.X+244, page.Max.Y-40), accent)
	fill(img, image.Rect(page.Min.X+64, page.Max.Y-66, page.Min.X+204, page.Max.Y-58), white)
	return img
}

func dot(img *image.RGBA, cx, cy, r float64, c color.RGBA) {
	for y := int(cy - r - 1); y <= int(cy+r+1); y++ {
		for x := int(cx - r - 1); x <= int(cx+r+1); x++ {
			d := math.Hypot(float64(x)+0.5-cx, float64(y)+0.5-cy)
			if a := math.Max(0, math.Min(1, r-d+0.5)); a > 0 {
				img.SetRGBA(x, y, blend(img.RGBAAt(x, y), c, a))
			}
		}
	}
}

func ring(x, y, cx, cy, r, thick float64) float64 {
	d := math.Abs(math.Hypot(x-cx, y-cy) - r)
	return math.Max(0, math.Min(1, thick/2-d+0.5))
}

func blend(a, b color.RGBA, t float64) color.RGBA {
	mix := func(p, q uint8) uint8 { return uint8(float64(p)*(1-t) + float64(q)*t) }
	return color.RGBA{mix(a.R, b.R), mix(a.G, b.G), mix(a.B, b.B), 0xff}
}

func save(path string, img image.Image) {
	f, err := os.Create(path)
	if err != nil {
		panic(err)
	}
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(f, img); err != nil {
		panic(err)
	}
	if err := f.Close(); err != nil {
		panic(err)
	}
}
