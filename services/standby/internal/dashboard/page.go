package dashboard

import (
	"fmt"
	"io/fs"
	"strings"
	"sync"
)

// The page's own references to its stylesheet and script, which inline
// replaces. Opened as a file, assets/index.html loads them from static/.
const (
	styleTag  = `<link rel="stylesheet" href="static/style.css">`
	scriptTag = `<script src="static/app.js" defer></script>`
	bodyEnd   = `</body>`
)

// page is the served page, built once from the embedded files.
var page = sync.OnceValues(func() ([]byte, error) { return inline(assets) })

// inline returns assets/index.html with its stylesheet and script in the
// document itself: a page that loaded always has its script. With separate
// files, a request for the script could meet a failover (the old active
// answers 503 once its lease ends) and leave a page that never goes live
// and never retries. The script goes last in the body, where the elements
// it looks up exist, as the deferred script ran before.
func inline(fsys fs.FS) ([]byte, error) {
	read := func(name string) (string, error) {
		b, err := fs.ReadFile(fsys, "assets/"+name)
		if err != nil {
			return "", fmt.Errorf("the embedded page is missing a file: %w", err)
		}
		return string(b), nil
	}
	html, err := read("index.html")
	if err != nil {
		return nil, err
	}
	css, err := read("style.css")
	if err != nil {
		return nil, err
	}
	js, err := read("app.js")
	if err != nil {
		return nil, err
	}
	for _, tag := range []string{styleTag, scriptTag, bodyEnd} {
		if n := strings.Count(html, tag); n != 1 {
			return nil, fmt.Errorf("index.html has %d of %q, want exactly 1", n, tag)
		}
	}
	// Text that would end the element early.
	if strings.Contains(strings.ToLower(css), "</style") {
		return nil, fmt.Errorf("style.css contains %q, which would end the inlined <style> early", "</style")
	}
	if strings.Contains(strings.ToLower(js), "</script") {
		return nil, fmt.Errorf("app.js contains %q, which would end the inlined <script> early", "</script")
	}
	html = strings.Replace(html, styleTag, "<style>\n"+css+"</style>", 1)
	html = strings.Replace(html, scriptTag, "", 1)
	html = strings.Replace(html, bodyEnd, "<script>\n"+js+"</script>\n"+bodyEnd, 1)
	return []byte(html), nil
}
