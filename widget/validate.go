package widget

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"io/fs"
	"regexp"
	"sort"
	"strings"
)

// Problem is one broken archive rule.
type Problem struct {
	File    string
	Message string
}

func (p Problem) String() string { return p.File + ": " + p.Message }

// Logo sizes amoCRM requires, and the most an image may weigh.
var logoSizes = map[string][2]int{
	"images/logo.png": {130, 100}, "images/logo_main.png": {400, 272}, "images/logo_medium.png": {240, 84},
	"images/logo_min.png": {84, 84}, "images/logo_small.png": {108, 108},
}

const maxImageBytes = 300 << 10

// scopeClass prefixes every CSS selector, so the widget never restyles amoCRM.
const scopeClass = ".svyazka-widget"

var (
	reEval      = regexp.MustCompile(`\beval\s*\(|new\s+Function\s*\(`)
	reSyncXHR   = regexp.MustCompile(`async\s*:\s*false|\.open\([^)]*,\s*false\s*\)`)
	reScriptTag = regexp.MustCompile(`(?i)<script`)
	reLoop      = regexp.MustCompile(`\bfor\s*\(|\bwhile\s*\(|\.each\s*\(|\.forEach\s*\(|\.map\s*\(`)
	reAPICall   = regexp.MustCompile(`\$authorizedAjax\s*\(|crm_post\s*\(|\$\.ajax\s*\(`)
	reCallbacks = []string{"render", "init", "bind_actions", "settings", "onSave", "destroy", "advancedSettings"}
)

// Validate checks archive sources against amoCRM's documented rules and its
// moderation lint; no problems means the archive may be uploaded.
func Validate(fsys fs.FS) []Problem {
	var out []Problem
	add := func(file, format string, args ...any) { out = append(out, Problem{file, fmt.Sprintf(format, args...)}) }
	read := func(name string) []byte {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			add(name, "required file is missing")
			return nil
		}
		return b
	}

	_ = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ext := strings.ToLower(p[strings.LastIndex(p, ".")+1:])
		if ext == "js" || ext == "json" || ext == "css" {
			b, _ := fs.ReadFile(fsys, p)
			if bytes.HasPrefix(b, []byte{0xEF, 0xBB, 0xBF}) {
				add(p, "starts with a UTF-8 byte-order mark")
			}
			if bytes.Contains(b, []byte("\r")) {
				add(p, "has CR line endings; only LF is allowed")
			}
		}
		if ext == "png" {
			if info, err := d.Info(); err == nil && info.Size() > maxImageBytes {
				add(p, "is %d KB, more than 300 KB", info.Size()>>10)
			}
		}
		return nil
	})

	var manifest struct {
		Widget struct {
			Name             string `json:"name"`
			Description      string `json:"description"`
			ShortDescription string `json:"short_description"`
			InterfaceVersion int    `json:"interface_version"`
			Locale           []string
			Support          struct{ Link, Email string }
		}
		Locations []string
		Advanced  struct{ Title string }
		Tour      struct {
			IsTour          bool                `json:"is_tour"`
			TourImages      map[string][]string `json:"tour_images"`
			TourDescription string              `json:"tour_description"`
		}
	}
	if b := read("manifest.json"); b != nil {
		if err := json.Unmarshal(b, &manifest); err != nil {
			add("manifest.json", "is not valid JSON: %v", err)
		}
	}
	if manifest.Widget.InterfaceVersion != 2 {
		add("manifest.json", "widget.interface_version must be 2")
	}
	for _, loc := range []string{"settings", "advanced_settings"} {
		if !contains(manifest.Locations, loc) {
			add("manifest.json", "locations must include %q", loc)
		}
	}
	if manifest.Advanced.Title == "" {
		add("manifest.json", "advanced.title is required for the advanced_settings page")
	}
	if manifest.Widget.Support.Link == "" && manifest.Widget.Support.Email == "" {
		add("manifest.json", "widget.support needs a link or an e-mail")
	}
	if !manifest.Tour.IsTour {
		add("manifest.json", "tour.is_tour must be true (the tour is mandatory)")
	}
	for lang, images := range manifest.Tour.TourImages {
		for _, img := range images {
			if _, err := fs.Stat(fsys, strings.TrimPrefix(img, "/")); err != nil {
				add("manifest.json", "tour image %s (%s) is not in the archive", img, lang)
			}
		}
	}

	locales := manifest.Widget.Locale
	if len(locales) == 0 {
		locales = []string{"ru"}
	}
	keySets := map[string][]string{}
	for _, lang := range locales {
		name := "i18n/" + lang + ".json"
		b := read(name)
		if b == nil {
			continue
		}
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			add(name, "is not valid JSON: %v", err)
			continue
		}
		keys := flatten("", doc)
		keySets[lang] = keys
		for _, ref := range []string{manifest.Widget.Name, manifest.Widget.Description, manifest.Widget.ShortDescription, manifest.Advanced.Title, manifest.Tour.TourDescription} {
			if ref != "" && !contains(keys, ref) {
				add(name, "lacks the key %q the manifest uses", ref)
			}
		}
	}
	for lang, keys := range keySets {
		for other, otherKeys := range keySets {
			for _, k := range otherKeys {
				if lang != other && !contains(keys, k) {
					add("i18n/"+lang+".json", "lacks the key %q that i18n/%s.json has", k, other)
				}
			}
		}
	}

	for name, size := range logoSizes {
		b := read(name)
		if b == nil {
			continue
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(b))
		if err != nil {
			add(name, "is not a PNG: %v", err)
			continue
		}
		if cfg.Width != size[0] || cfg.Height != size[1] {
			add(name, "is %d×%d; amoCRM requires %d×%d", cfg.Width, cfg.Height, size[0], size[1])
		}
	}

	if b := read("script.js"); b != nil {
		out = append(out, lintScript(string(b))...)
	}
	if b, err := fs.ReadFile(fsys, "style.css"); err == nil {
		out = append(out, lintCSS(string(b))...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

func lintScript(src string) []Problem {
	var out []Problem
	add := func(format string, args ...any) {
		out = append(out, Problem{"script.js", fmt.Sprintf(format, args...)})
	}
	if !regexp.MustCompile(`^\s*define\s*\(`).MatchString(src) {
		add("must be an AMD module starting with define(...)")
	}
	if !strings.Contains(src, "this.callbacks") {
		add("must set this.callbacks")
	}
	for _, cb := range reCallbacks {
		if !regexp.MustCompile(`\b` + cb + `\s*:\s*function`).MatchString(src) {
			add("callback %s is not defined", cb)
		}
	}
	if reEval.MatchString(src) {
		add("uses eval or new Function")
	}
	if reSyncXHR.MatchString(src) {
		add("makes a synchronous request (async: false)")
	}
	if reScriptTag.MatchString(src) {
		add("injects a <script> tag")
	}
	for _, body := range loopBodies(src) {
		if reAPICall.MatchString(body) {
			add("calls the API inside a loop")
			break
		}
	}
	return out
}

// loopBodies returns the brace-delimited bodies of loops and iteration
// callbacks, by matching braces from each loop keyword.
func loopBodies(src string) []string {
	var bodies []string
	for _, loc := range reLoop.FindAllStringIndex(src, -1) {
		open := strings.IndexByte(src[loc[1]:], '{')
		if open < 0 {
			continue
		}
		start := loc[1] + open
		depth := 0
		for i := start; i < len(src); i++ {
			switch src[i] {
			case '{':
				depth++
			case '}':
				depth--
				if depth == 0 {
					bodies = append(bodies, src[start:i+1])
					i = len(src)
				}
			}
		}
	}
	return bodies
}

var reCSSComment = regexp.MustCompile(`(?s)/\*.*?\*/`)

func lintCSS(src string) []Problem {
	var out []Problem
	src = reCSSComment.ReplaceAllString(src, "")
	for _, block := range strings.Split(src, "}") {
		head, _, ok := strings.Cut(block, "{")
		if !ok {
			continue
		}
		for _, sel := range strings.Split(head, ",") {
			sel = strings.TrimSpace(sel)
			if sel != "" && !strings.HasPrefix(sel, scopeClass) && !strings.HasPrefix(sel, "@") {
				out = append(out, Problem{"style.css", fmt.Sprintf("selector %q is not scoped under %s", sel, scopeClass)})
			}
		}
	}
	return out
}

func flatten(prefix string, doc map[string]any) []string {
	var keys []string
	for k, v := range doc {
		full := k
		if prefix != "" {
			full = prefix + "." + k
		}
		keys = append(keys, full)
		if sub, ok := v.(map[string]any); ok {
			keys = append(keys, flatten(full, sub)...)
		}
	}
	return keys
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ValidateZip checks a built archive: files at the root (no wrapping folder,
// no __MACOSX), then every rule of Validate.
func ValidateZip(r io.ReaderAt, size int64) []Problem {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return []Problem{{"widget.zip", "is not a zip archive: " + err.Error()}}
	}
	var out []Problem
	mem := memFS{}
	for _, f := range zr.File {
		if strings.HasPrefix(f.Name, "__MACOSX") || strings.HasPrefix(f.Name, "/") || strings.Contains(f.Name, "..") {
			out = append(out, Problem{f.Name, "must not be in the archive"})
			continue
		}
		if f.FileInfo().IsDir() {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			out = append(out, Problem{f.Name, err.Error()})
			continue
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			out = append(out, Problem{f.Name, err.Error()})
			continue
		}
		mem[f.Name] = b
	}
	if _, ok := mem["manifest.json"]; !ok {
		out = append(out, Problem{"widget.zip", "manifest.json is not at the archive root (files must not sit in a folder)"})
	}
	return append(out, Validate(mem.fs())...)
}
