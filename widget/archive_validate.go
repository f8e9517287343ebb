package widget

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	_ "image/gif"  // logos may be GIF
	_ "image/jpeg" // or JPEG
	_ "image/png"
	"io"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"
	"testing/fstest"
	"unicode"
	"unicode/utf8"
)

// Problem is one broken archive rule: the file it is about (as named inside
// the archive) and what is wrong, in words a developer can act on.
type Problem struct {
	File    string
	Message string
}

func (p Problem) String() string { return p.File + ": " + p.Message }

// The rules below come from amoCRM's developer docs: integrations/structure
// (files, logo sizes, manifest fields), integrations/requirements (§3.1 archive,
// JavaScript and CSS rules, §4.3 tour image size) and integrations/script_js.
var (
	logoSizes = map[string][2]int{
		"images/logo.png": {130, 100}, "images/logo_main.png": {400, 272}, "images/logo_medium.png": {240, 84},
		"images/logo_min.png": {84, 84}, "images/logo_small.png": {108, 108},
	}
	dpLogo, dpLogoSize = "images/logo_dp.png", [2]int{174, 109}
	tourSize           = [2]int{1188, 616}

	knownLocales   = []string{"ru", "en", "es", "pt"}
	knownLocations = []string{"lcard", "ccard", "comcard", "cucard", "llist", "clist", "culist", "tlist", "settings",
		"advanced_settings", "card_sdk", "catalogs", "digital_pipeline", "lead_sources", "whatsapp_modal", "everywhere",
		"widget_page", "sms", "mobile_card", "amoforms", "salesbot_designer"}
	settingTypes = []string{"text", "pass", "users", "users_lp", "custom"}
)

const (
	maxImageBytes = 300 << 10
	// scopeClass is the widget's root class: every CSS selector starts with it,
	// so the widget never restyles amoCRM.
	scopeClass = ".svyazka-widget"
)

var textExts = map[string]bool{".js": true, ".json": true, ".css": true, ".twig": true, ".html": true, ".md": true, ".txt": true}
var imageExts = map[string]bool{".png": true, ".jpg": true, ".jpeg": true, ".gif": true}

// Validate checks widget archive sources, rooted at the archive root, against
// amoCRM's documented archive rules and its moderation lint. An empty result
// means the archive may be uploaded. It never fails: unreadable or malformed
// files are reported as problems.
func Validate(fsys fs.FS) []Problem {
	c := &checker{fsys: fsys}
	c.run()
	sort.SliceStable(c.out, func(i, j int) bool {
		if c.out[i].File != c.out[j].File {
			return c.out[i].File < c.out[j].File
		}
		return c.out[i].Message < c.out[j].Message
	})
	return c.out
}

// ValidateZip checks a built widget.zip: entries sit at the archive root (no
// wrapping folder, no __MACOSX, no absolute or parent paths, no duplicates),
// the backend URL placeholder is filled in, then every rule of Validate.
func ValidateZip(r io.ReaderAt, size int64) []Problem {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return []Problem{{"widget.zip", "is not a zip archive: " + err.Error()}}
	}
	var out []Problem
	files := fstest.MapFS{}
	for _, f := range zr.File {
		name := f.Name
		switch {
		case strings.HasPrefix(name, "__MACOSX") || path.Base(name) == ".DS_Store":
			out = append(out, Problem{name, "is macOS metadata; it must not be in the archive"})
			continue
		case strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || !fs.ValidPath(strings.TrimSuffix(name, "/")):
			out = append(out, Problem{name, "has an invalid path (absolute, backslash or ..)"})
			continue
		case f.FileInfo().IsDir():
			continue
		case files[name] != nil:
			out = append(out, Problem{name, "is in the archive twice"})
			continue
		}
		rc, err := f.Open()
		if err != nil {
			out = append(out, Problem{name, "cannot be read: " + err.Error()})
			continue
		}
		b, err := io.ReadAll(rc)
		_ = rc.Close()
		if err != nil {
			out = append(out, Problem{name, "cannot be read: " + err.Error()})
			continue
		}
		files[name] = &fstest.MapFile{Data: b}
		if textExts[path.Ext(name)] && bytes.Contains(b, []byte(backendPlaceholder)) {
			out = append(out, Problem{name, "still holds " + backendPlaceholder + "; build the archive with BuildArchive"})
		}
	}
	if files["manifest.json"] == nil {
		for name := range files {
			if path.Base(name) == "manifest.json" {
				out = append(out, Problem{"widget.zip", "manifest.json is not at the archive root but at " + name + " (files must not sit in a folder)"})
				return out
			}
		}
	}
	return append(out, Validate(files)...)
}

type manifest struct {
	Widget struct {
		Name             string   `json:"name"`
		Description      string   `json:"description"`
		ShortDescription string   `json:"short_description"`
		Version          string   `json:"version"`
		InterfaceVersion int      `json:"interface_version"`
		Locale           []string `json:"locale"`
		Installation     *bool    `json:"installation"`
		Support          struct {
			Link  string `json:"link"`
			Email string `json:"email"`
		} `json:"support"`
	} `json:"widget"`
	Locations []string `json:"locations"`
	Advanced  struct {
		Title string `json:"title"`
	} `json:"advanced"`
	Tour struct {
		IsTour          bool                `json:"is_tour"`
		TourImages      map[string][]string `json:"tour_images"`
		TourDescription string              `json:"tour_description"`
	} `json:"tour"`
	Settings map[string]struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		Required bool   `json:"required"`
	} `json:"settings"`
}

// locationSet is the manifest's locations without the right-column suffix (-0/-1).
func (m *manifest) locationSet() map[string]bool {
	set := map[string]bool{}
	for _, loc := range m.Locations {
		set[strings.TrimSuffix(strings.TrimSuffix(loc, "-0"), "-1")] = true
	}
	return set
}

type checker struct {
	fsys  fs.FS
	out   []Problem
	files []string
}

func (c *checker) add(file, format string, args ...any) {
	c.out = append(c.out, Problem{file, fmt.Sprintf(format, args...)})
}

// read returns a required file, reporting it when missing.
func (c *checker) read(name string) []byte {
	b, err := fs.ReadFile(c.fsys, name)
	if err != nil {
		c.add(name, "required file is missing")
		return nil
	}
	return b
}

func (c *checker) exists(name string) bool {
	_, err := fs.Stat(c.fsys, name)
	return err == nil
}

func (c *checker) run() {
	err := fs.WalkDir(c.fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			c.add(p, "cannot be read: %v", err)
			return nil
		}
		if !d.IsDir() {
			c.files = append(c.files, p)
			c.checkEncoding(p)
		}
		return nil
	})
	if err != nil {
		c.add(".", "cannot be listed: %v", err)
	}

	m := c.checkManifest()
	c.checkI18n(m)
	c.checkImages(m)
	c.checkUnused(m)
	if b := c.read("script.js"); b != nil {
		c.out = append(c.out, lintScript(string(b), m.locationSet())...)
	}
	if b, err := fs.ReadFile(c.fsys, "style.css"); err == nil {
		c.out = append(c.out, lintCSS(string(b))...)
	}
}

// checkEncoding enforces UTF-8 without BOM and LF line ends on text files and
// the size limit on images.
func (c *checker) checkEncoding(name string) {
	ext := strings.ToLower(path.Ext(name))
	switch {
	case textExts[ext]:
		b, err := fs.ReadFile(c.fsys, name)
		if err != nil {
			return
		}
		if bytes.HasPrefix(b, []byte{0xEF, 0xBB, 0xBF}) {
			c.add(name, "starts with a UTF-8 byte-order mark; save it as UTF-8 without BOM")
		}
		if !utf8.Valid(b) {
			c.add(name, "is not valid UTF-8")
		}
		if bytes.Contains(b, []byte("\r")) {
			c.add(name, "has CR (Windows or Mac) line endings; only LF is allowed")
		}
	case imageExts[ext]:
		if info, err := fs.Stat(c.fsys, name); err == nil && info.Size() > maxImageBytes {
			c.add(name, "is %d KB, more than the 300 KB amoCRM allows", (info.Size()+1023)>>10)
		}
	}
}

var reVersion = regexp.MustCompile(`^\d+\.\d+\.\d+$`)

func (c *checker) checkManifest() *manifest {
	m := &manifest{}
	b := c.read("manifest.json")
	if b == nil {
		return m
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		c.add("manifest.json", "is not valid JSON: %v", err)
		return m
	}
	if err := json.Unmarshal(b, m); err != nil {
		c.add("manifest.json", "has a field of the wrong type: %v", err)
	}
	w := m.Widget
	for field, key := range map[string]string{"widget.name": w.Name, "widget.description": w.Description, "widget.short_description": w.ShortDescription} {
		if key == "" {
			c.add("manifest.json", "%s is required (an i18n key)", field)
		}
	}
	if !reVersion.MatchString(w.Version) {
		c.add("manifest.json", "widget.version %q must look like 1.0.0", w.Version)
	}
	if w.InterfaceVersion != 2 {
		c.add("manifest.json", "widget.interface_version must be 2")
	}
	if len(w.Locale) == 0 {
		c.add("manifest.json", "widget.locale must list at least one language")
	}
	for _, l := range w.Locale {
		if !contains(knownLocales, l) {
			c.add("manifest.json", "widget.locale %q is not one of %s", l, strings.Join(knownLocales, ", "))
		}
	}
	if w.Installation == nil {
		c.add("manifest.json", "widget.installation is required (true or false)")
	}
	if !strings.HasPrefix(w.Support.Link, "https://") && !strings.Contains(w.Support.Email, "@") {
		c.add("manifest.json", "widget.support needs an https link or an e-mail")
	}

	if len(m.Locations) == 0 {
		c.add("manifest.json", "locations must not be empty")
	}
	for _, loc := range m.Locations {
		if base := strings.TrimSuffix(strings.TrimSuffix(loc, "-0"), "-1"); !contains(knownLocations, base) {
			c.add("manifest.json", "location %q is not one amoCRM knows", loc)
		}
	}
	locs := m.locationSet()
	for _, loc := range []string{"settings", "advanced_settings"} {
		if !locs[loc] {
			c.add("manifest.json", "locations must include %q", loc)
		}
	}
	if locs["advanced_settings"] && m.Advanced.Title == "" {
		c.add("manifest.json", "advanced.title is required for the advanced_settings page")
	}

	if !m.Tour.IsTour {
		c.add("manifest.json", "tour.is_tour must be true (the tour is mandatory)")
	}
	if m.Tour.TourDescription == "" {
		c.add("manifest.json", "tour.tour_description is required (an i18n key)")
	}
	for _, l := range w.Locale {
		if len(m.Tour.TourImages[l]) == 0 {
			c.add("manifest.json", "tour.tour_images has no pictures for %q", l)
		}
	}
	for _, l := range sortedKeys(m.Tour.TourImages) {
		for _, img := range m.Tour.TourImages[l] {
			if !c.exists(strings.TrimPrefix(img, "/")) {
				c.add("manifest.json", "tour image %s (%s) is not in the archive", img, l)
			}
		}
	}

	if _, ok := raw["settings"]; !ok && w.Installation != nil && *w.Installation {
		c.add("manifest.json", "settings is required when widget.installation is true (it may be {})")
	}
	custom := 0
	for _, code := range sortedKeys(m.Settings) {
		s := m.Settings[code]
		if s.Name == "" {
			c.add("manifest.json", "settings.%s.name is required (an i18n key)", code)
		}
		if !contains(settingTypes, s.Type) {
			c.add("manifest.json", "settings.%s.type %q is not one of %s", code, s.Type, strings.Join(settingTypes, ", "))
		}
		if s.Type == "custom" {
			custom++
		}
	}
	if custom > 1 {
		c.add("manifest.json", "settings may hold at most one custom field, not %d", custom)
	}
	return m
}

var (
	reCyrillic = regexp.MustCompile(`\p{Cyrillic}`)
	reRuDomain = regexp.MustCompile(`(?i)[a-z0-9-]\.ru\b`)
	reAmoName  = regexp.MustCompile(`(?i)amo\s*crm`)
)

// checkI18n checks every declared locale file: valid JSON with the same key
// structure as the others, holding every key the manifest references; non-Russian
// files carry no Russian text or .ru addresses (requirements §3.1.3).
func (c *checker) checkI18n(m *manifest) {
	refs := []string{m.Widget.Name, m.Widget.Description, m.Widget.ShortDescription, m.Advanced.Title, m.Tour.TourDescription}
	for _, code := range sortedKeys(m.Settings) {
		refs = append(refs, m.Settings[code].Name)
	}
	keySets := map[string]map[string]bool{}
	var locales []string
	for _, lang := range m.Widget.Locale {
		name := "i18n/" + lang + ".json"
		b := c.read(name)
		if b == nil {
			continue
		}
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			c.add(name, "is not a valid JSON object: %v", err)
			continue
		}
		keys := map[string]bool{}
		flatten("", doc, keys)
		keySets[lang] = keys
		locales = append(locales, lang)
		for _, ref := range refs {
			if ref == "" {
				continue
			}
			if v, ok := lookup(doc, ref); !ok {
				c.add(name, "lacks the key %q the manifest uses", ref)
			} else if s, isText := v.(string); !isText || strings.TrimSpace(s) == "" {
				c.add(name, "key %q the manifest uses must be non-empty text", ref)
			}
		}
		if v, ok := lookup(doc, m.Widget.Name); ok {
			if s, _ := v.(string); reAmoName.MatchString(s) {
				c.add(name, "widget name %q must not contain amoCRM (requirements §4.2)", s)
			}
		}
		if lang != "ru" {
			if reCyrillic.Match(b) {
				c.add(name, "has Russian text; the %s file must be in its own language", lang)
			}
			if loc := reRuDomain.FindIndex(b); loc != nil {
				c.add(name, "mentions a .ru address (%s); the %s file must not", excerpt(b, loc), lang)
			}
		}
	}
	for _, lang := range locales {
		for _, other := range locales {
			if lang == other {
				continue
			}
			for _, k := range sortedKeys(keySets[other]) {
				if !keySets[lang][k] {
					c.add("i18n/"+lang+".json", "lacks the key %q that i18n/%s.json has", k, other)
				}
			}
		}
	}
}

func (c *checker) checkImages(m *manifest) {
	want := map[string][2]int{}
	for name, size := range logoSizes {
		want[name] = size
	}
	if m.locationSet()["digital_pipeline"] {
		want[dpLogo] = dpLogoSize
	}
	for _, name := range sortedKeys(want) {
		if b := c.read(name); b != nil {
			c.checkSize(name, b, want[name])
		}
	}
	for _, l := range sortedKeys(m.Tour.TourImages) {
		for _, img := range m.Tour.TourImages[l] {
			if b, err := fs.ReadFile(c.fsys, strings.TrimPrefix(img, "/")); err == nil {
				c.checkSize(strings.TrimPrefix(img, "/"), b, tourSize)
			}
		}
	}
}

func (c *checker) checkSize(name string, b []byte, size [2]int) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		c.add(name, "is not a PNG, JPEG or GIF image: %v", err)
		return
	}
	if strings.EqualFold(path.Ext(name), ".png") && format != "png" {
		c.add(name, "is named .png but holds a %s image", format)
	}
	if cfg.Width != size[0] || cfg.Height != size[1] {
		c.add(name, "is %d×%d; amoCRM requires %d×%d", cfg.Width, cfg.Height, size[0], size[1])
	}
}

// checkUnused reports files nothing uses: amoCRM asks for archives without
// leftovers (requirements §3.1).
func (c *checker) checkUnused(m *manifest) {
	used := map[string]bool{"manifest.json": true, "script.js": true, "style.css": true}
	for name := range logoSizes {
		used[name] = true
	}
	if m.locationSet()["digital_pipeline"] {
		used[dpLogo] = true
	}
	for _, l := range m.Widget.Locale {
		used["i18n/"+l+".json"] = true
	}
	for _, imgs := range m.Tour.TourImages {
		for _, img := range imgs {
			used[strings.TrimPrefix(img, "/")] = true
		}
	}
	for _, name := range c.files {
		if !used[name] && !(strings.HasPrefix(name, "templates/") && path.Ext(name) == ".twig") {
			c.add(name, "is not used by the widget; remove it from the archive")
		}
	}
}

var (
	reDefine     = regexp.MustCompile(`^\s*define\s*\(`)
	reDefineDeps = regexp.MustCompile(`^\s*define\s*\(\s*\[([^\]]*)\]`)
	reDepName    = regexp.MustCompile(`['"]([^'"]*)['"]`)
	reEval       = regexp.MustCompile(`(^|[^\w$.])eval\s*\(|\bnew\s+Function\b|\bset(Timeout|Interval)\s*\(\s*['"]`)
	reSyncXHR    = regexp.MustCompile(`\basync\s*:\s*false\b|\.open\s*\([^)]*,\s*false\s*[,)]`)
	reScriptTag  = regexp.MustCompile(`(?i)<\s*script|createElement\s*\(\s*['"]script['"]`)
	reDialog     = regexp.MustCompile(`(^|[^\w$.]|window\.)(alert|confirm|prompt)\s*\(`)
	reConsole    = regexp.MustCompile(`\bconsole\s*\.\s*(\w+)`)
	reDebugger   = regexp.MustCompile(`\bdebugger\b`)
	reAMOCRMSet  = regexp.MustCompile(`\bAMOCRM\b(\s*(\.\s*[\w$]+|\[[^\]]*\]))*\s*([+\-*/]?=[^=]|\+\+|--)`)
	reLoop       = regexp.MustCompile(`\b(for|while)\s*\(|\bdo\s*\{|\.\s*(each|forEach|map|filter|reduce|some|every)\s*\(|\bsetInterval\s*\(`)
	reAPICall    = regexp.MustCompile(`\$authorizedAjax\s*\(|\bcrm_post\s*\(|\$\s*\.\s*(ajax|get|post|getJSON)\s*\(|\bfetch\s*\(|\bXMLHttpRequest\b`)
)

// lintScript applies the moderation rules for script.js (requirements §3.1.1,
// §3.2) to the source with comments removed.
func lintScript(src string, locations map[string]bool) []Problem {
	var out []Problem
	add := func(format string, args ...any) {
		out = append(out, Problem{"script.js", fmt.Sprintf(format, args...)})
	}
	code, bare := stripJS(src)

	if !reDefine.MatchString(code) {
		add("must be an AMD module starting with define(...)")
	}
	if m := reDefineDeps.FindStringSubmatch(code); m != nil {
		for _, dep := range reDepName.FindAllStringSubmatch(m[1], -1) {
			if strings.Contains(dep[1], "//") {
				add("loads the dependency %q from an outside host; dependencies must come from amoCRM or the archive", dep[1])
			}
		}
	}
	if !strings.Contains(code, "this.callbacks") {
		add("must set this.callbacks")
	}
	required := []string{"render", "init", "bind_actions", "onSave", "destroy"}
	if locations["settings"] {
		required = append(required, "settings")
	}
	if locations["advanced_settings"] {
		required = append(required, "advancedSettings")
	}
	for _, cb := range required {
		body, ok := callbackBody(code, bare, cb)
		if !ok {
			add("callback %s is not defined", cb)
			continue
		}
		if (cb == "render" || cb == "init" || cb == "bind_actions") && !strings.Contains(body, "return true") {
			add("callback %s must return true, or amoCRM stops loading the widget", cb)
		}
	}
	if reEval.MatchString(bare) {
		add("uses eval, new Function or a string timer")
	}
	if reSyncXHR.MatchString(code) {
		add("makes a synchronous request (async: false)")
	}
	if reScriptTag.MatchString(code) {
		add("injects a <script> tag; load dependencies through define([...])")
	}
	if m := reDialog.FindStringSubmatch(bare); m != nil {
		add("calls %s(); amoCRM forbids alert and confirm", m[2])
	}
	for _, m := range reConsole.FindAllStringSubmatch(bare, -1) {
		if m[1] != "debug" && m[1] != "trace" {
			add("calls console.%s; only console.debug (and console.trace on errors) are allowed", m[1])
			break
		}
	}
	if reDebugger.MatchString(bare) {
		add("has a debugger statement")
	}
	if reAMOCRMSet.MatchString(bare) {
		add("writes to the global AMOCRM object; widgets may only read it")
	}
	for _, body := range loopBodies(bare) {
		if reAPICall.MatchString(body) {
			add("calls the API inside a loop")
			break
		}
	}
	return out
}

// stripJS removes comments from src. It returns the code with strings kept
// (code) and the same code with string and template contents blanked (bare),
// so braces and keywords inside strings do not count. Regular expression
// literals are not recognised; the widget's own code has none.
func stripJS(src string) (code, bare string) {
	var c, b strings.Builder
	emit := func(r rune, blank bool) {
		c.WriteRune(r)
		if blank && r != '\n' {
			// As many bytes as the rune, so indexes into code and bare agree.
			b.WriteString(strings.Repeat(" ", utf8.RuneLen(r)))
		} else {
			b.WriteRune(r)
		}
	}
	rs := []rune(src)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == '/' && i+1 < len(rs) && rs[i+1] == '/':
			for i < len(rs) && rs[i] != '\n' {
				i++
			}
			if i < len(rs) {
				emit('\n', false)
			}
		case r == '/' && i+1 < len(rs) && rs[i+1] == '*':
			i += 2
			for i < len(rs) && !(rs[i] == '*' && i+1 < len(rs) && rs[i+1] == '/') {
				if rs[i] == '\n' {
					emit('\n', false)
				}
				i++
			}
			i++
			emit(' ', false)
		case r == '\'' || r == '"' || r == '`':
			emit(r, false)
			for i++; i < len(rs) && rs[i] != r; i++ {
				if rs[i] == '\\' && i+1 < len(rs) {
					emit(rs[i], true)
					i++
				}
				emit(rs[i], true)
			}
			if i < len(rs) {
				emit(r, false)
			}
		default:
			emit(r, false)
		}
	}
	return c.String(), b.String()
}

// callbackBody finds `name: function (...) {...}` and returns its body.
func callbackBody(code, bare, name string) (string, bool) {
	re := regexp.MustCompile(`(^|[^\w$.])` + regexp.QuoteMeta(name) + `\s*:\s*function\b[^{]*\{`)
	loc := re.FindStringIndex(bare)
	if loc == nil {
		return "", false
	}
	end := matchClose(bare, loc[1]-1)
	return code[loc[1]-1 : end], true
}

// matchClose returns the index just past the bracket that closes the one at
// open, or len(s) when it is never closed.
func matchClose(s string, open int) int {
	closer := map[byte]byte{'{': '}', '(': ')', '[': ']'}[s[open]]
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case s[open]:
			depth++
		case closer:
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return len(s)
}

// loopBodies returns what runs repeatedly: the body of for/while/do loops
// (a block, or the single statement up to ';') and the argument list of
// iteration calls such as .each(...) or setInterval(...), which holds the callback.
func loopBodies(bare string) []string {
	var bodies []string
	for _, loc := range reLoop.FindAllStringIndex(bare, -1) {
		open := loc[1] - 1
		switch bare[open] {
		case '{': // do { ... }
			bodies = append(bodies, bare[open:matchClose(bare, open)])
		case '(':
			head := bare[loc[0]:loc[1]]
			end := matchClose(bare, open)
			if !strings.HasPrefix(head, "for") && !strings.HasPrefix(head, "while") {
				bodies = append(bodies, bare[open:end])
				continue
			}
			rest := strings.TrimLeftFunc(bare[end:], unicode.IsSpace)
			start := len(bare) - len(rest)
			switch {
			case strings.HasPrefix(rest, "{"):
				bodies = append(bodies, bare[start:matchClose(bare, start)])
			case strings.HasPrefix(rest, ";"): // do {...} while (x);
			default:
				stmt, _, _ := strings.Cut(rest, ";")
				bodies = append(bodies, stmt)
			}
		}
	}
	return bodies
}

var reCSSComment = regexp.MustCompile(`(?s)/\*.*?\*/`)

// lintCSS reports selectors not scoped under scopeClass, looking into
// @media and @supports blocks, and @import of outside styles.
func lintCSS(src string) []Problem {
	var out []Problem
	var walk func(s string)
	walk = func(s string) {
		for {
			open := strings.IndexByte(s, '{')
			if open < 0 {
				if strings.Contains(s, "@import") {
					out = append(out, Problem{"style.css", "uses @import; styles must come from the widget's own style.css"})
				}
				return
			}
			head := strings.TrimSpace(s[:open])
			// Statements such as @import end with ';' before the next block.
			if i := strings.LastIndexByte(head, ';'); i >= 0 {
				if strings.Contains(head[:i], "@import") {
					out = append(out, Problem{"style.css", "uses @import; styles must come from the widget's own style.css"})
				}
				head = strings.TrimSpace(head[i+1:])
			}
			end := matchClose(s, open)
			inner := s[open+1 : max(open+1, end-1)]
			switch {
			case strings.HasPrefix(head, "@media"), strings.HasPrefix(head, "@supports"), strings.HasPrefix(head, "@container"):
				walk(inner)
			case strings.HasPrefix(head, "@"): // @font-face, @keyframes: no selectors
			default:
				for _, sel := range strings.Split(head, ",") {
					sel = strings.TrimSpace(sel)
					if !scoped(sel) {
						out = append(out, Problem{"style.css", fmt.Sprintf("selector %q is not scoped under %s", sel, scopeClass)})
					}
				}
			}
			s = s[end:]
		}
	}
	walk(reCSSComment.ReplaceAllString(src, ""))
	return out
}

func scoped(sel string) bool {
	if !strings.HasPrefix(sel, scopeClass) {
		return false
	}
	rest := sel[len(scopeClass):]
	return rest == "" || !(rest[0] == '-' || rest[0] == '_' || unicode.IsLetter(rune(rest[0])) || unicode.IsDigit(rune(rest[0])))
}

func flatten(prefix string, doc map[string]any, keys map[string]bool) {
	for k, v := range doc {
		full := k
		if prefix != "" {
			full = prefix + "." + k
		}
		keys[full] = true
		if sub, ok := v.(map[string]any); ok {
			flatten(full, sub, keys)
		}
	}
}

// lookup follows a dotted i18n key ("widget.name") through the document.
func lookup(doc map[string]any, key string) (any, bool) {
	var cur any = doc
	for _, part := range strings.Split(key, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func excerpt(b []byte, loc []int) string {
	start, end := max(0, loc[0]-20), min(len(b), loc[1]+10)
	for start > 0 && !utf8.RuneStart(b[start]) {
		start--
	}
	for end < len(b) && !utf8.RuneStart(b[end]) {
		end++
	}
	return strings.TrimSpace(string(b[start:end]))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
