//go:build ignore

// Command logos_gen draws the widget's logos and tour images into
// widget/amo/images: two interlocking rings (a "связка", a link) in the brand
// colour. Run from the repository root: go run widget/logos_gen.go
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
)

func main() {
	for name, size := range map[string][2]int{
		"logo.png": {130, 100}, "logo_main.png": {400, 272}, "logo_medium.png": {240, 84},
		"logo_min.png": {84, 84}, "logo_small.png": {108, 108}, "logo_dp.png": {174, 109},
		"tour_ru.png": {800, 500}, "tour_en.png": {800, 500},
	} {
		draw(filepath.Join("widget", "amo", "images", name), size[0], size[1])
	}
}

// draw paints two rings centred in a w×h canvas, anti-aliased by distance.
func draw(path string, w, h int) {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	r := math.Min(float64(w)/4.2, float64(h)/2.6)
	thick := math.Max(r/4.5, 2)
	cy := float64(h) / 2
	c1, c2 := float64(w)/2-r*0.55, float64(w)/2+r*0.55
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			px, py := float64(x)+0.5, float64(y)+0.5
			col := white
			if a := ring(px, py, c2, cy, r, thick); a > 0 {
				col = blend(col, accent, a)
			}
			if a := ring(px, py, c1, cy, r, thick); a > 0 {
				// The first ring passes under the second in the upper half: a chain link.
				if !(py < cy && ring(px, py, c2, cy, r, thick) > 0.5) {
					col = blend(col, brand, a)
				}
			}
			img.Set(x, y, col)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		panic(err)
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
