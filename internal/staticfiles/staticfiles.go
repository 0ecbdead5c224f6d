// Package staticfiles serves the files of a bundle embedded in the binary (GraphiQL's, the web
// app's): each read, hashed and gzip-compressed once, then answered with validators and caching
// headers that let a browser keep it for a year when the URL names its content.
//
// # Caching
//
// A file's ETag is the first 16 hex digits of the SHA-256 of its bytes ([Files.Hash]). A page
// links a file as "<name>?v=<hash>"; a request whose v matches the file's hash, and a file whose
// name is its hash (a content-addressed font), is answered with Cache-Control: public,
// max-age=31536000, immutable: the same URL can never name other bytes. Anything else is
// revalidated (no-cache) against the ETag. Text files are sent gzip-compressed to clients that
// accept gzip when that is smaller, under an ETag of their own ("<hash>-gzip"), with
// Vary: Accept-Encoding. Every response carries X-Content-Type-Options: nosniff.
package staticfiles

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
)

const (
	immutable  = "public, max-age=31536000, immutable"
	revalidate = "no-cache"
)

// Files are the files of a bundle, by path relative to its root ("app.js", "fonts/<hash>.woff2").
type Files map[string]*file

type file struct {
	body  []byte
	gz    []byte // nil when gzip does not make it smaller
	hash  string // hex, 16 digits
	ctype string
	// named says that the file name is its hash, so any URL of it is immutable.
	named bool
}

// Load reads, hashes and compresses every file of fsys.
func Load(fsys fs.FS) (Files, error) {
	files := Files{}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		f := &file{body: body, hash: hex.EncodeToString(sum[:8]), ctype: contentType(name)}
		base := path.Base(name)
		f.named = strings.TrimSuffix(base, path.Ext(base)) == f.hash
		if strings.HasPrefix(f.ctype, "text/") {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
			zw.Write(body)
			zw.Close()
			if buf.Len() < len(body) {
				f.gz = buf.Bytes()
			}
		}
		files[name] = f
		return nil
	})
	return files, err
}

// LoadDir is Load of the directory dir of fsys (an embedded bundle's dist), failing with
// "dir/name is missing: <build>" when one of the files required is not there: a binary built
// before its bundle was.
func LoadDir(fsys fs.FS, dir, build string, required ...string) (Files, error) {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		return nil, err
	}
	files, err := Load(sub)
	if err != nil {
		return nil, err
	}
	for _, name := range required {
		if !files.Has(name) {
			return nil, fmt.Errorf("%s/%s is missing: %s", dir, name, build)
		}
	}
	return files, nil
}

// Route answers what is not the page of a bundle's handler: a file under prefix, a path other
// than page (404), a method other than GET and HEAD (405). It reports whether the request is
// left to the caller, a GET or HEAD of page, with X-Content-Type-Options set already.
func (fs Files) Route(w http.ResponseWriter, r *http.Request, prefix, page string) bool {
	if name, ok := strings.CutPrefix(r.URL.Path, prefix); ok {
		fs.Serve(w, r, name)
		return false
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.URL.Path != page {
		http.NotFound(w, r)
		return false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return false
	}
	return true
}

// Page is an HTML page that loads a bundle: one stylesheet, one deferred script, and the
// script's configuration as JSON in <script type="application/json" id=ConfigID>.
type Page struct {
	Title    string
	CSS, JS  string // the bundle's URLs (Files.URL)
	ConfigID string
	// Config is the configuration's JSON. It is written verbatim: it must come from
	// encoding/json, which escapes <, > and & (and U+2028, U+2029), so that it can neither close
	// the script element nor open an HTML comment in it.
	Config []byte
	// RootID is the id of the element the script renders into, which shows NoScript until it
	// does.
	RootID, NoScript string
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{{.CSS}}">
<script type="application/json" id="{{.ConfigID}}">{{.Config}}</script>
<script defer src="{{.JS}}"></script>
</head>
<body>
<div id="{{.RootID}}"><noscript>{{.NoScript}}</noscript></div>
</body>
</html>
`))

// Render returns the page's HTML.
func (p Page) Render() ([]byte, error) {
	var buf bytes.Buffer
	err := pageTemplate.Execute(&buf, map[string]any{
		"Title": p.Title, "CSS": p.CSS, "JS": p.JS, "ConfigID": p.ConfigID,
		// html/template treats the content of an application/json script as JavaScript;
		// template.JS puts the (already safe) JSON in verbatim.
		"Config": template.JS(p.Config),
		"RootID": p.RootID, "NoScript": p.NoScript,
	})
	return buf.Bytes(), err
}

// WritePage answers a GET or HEAD of a page rendered for this request alone: never cached,
// never framed, no referrer, under the Content-Security-Policy csp.
func WritePage(w http.ResponseWriter, r *http.Request, page []byte, csp string) {
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Security-Policy", csp)
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Length", strconv.Itoa(len(page)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(page)
	}
}

// Has reports whether the bundle holds name.
func (fs Files) Has(name string) bool { return fs[name] != nil }

// Hash returns the hash of name's content, "" when there is no such file.
func (fs Files) Hash(name string) string {
	if f := fs[name]; f != nil {
		return f.hash
	}
	return ""
}

// URL returns prefix+name with the version parameter that makes it cacheable for a year.
func (fs Files) URL(prefix, name string) string { return prefix + name + "?v=" + fs.Hash(name) }

// Serve answers a GET or HEAD of the file name (404 when there is none, 405 for another
// method).
func (fs Files) Serve(w http.ResponseWriter, r *http.Request, name string) {
	hd := w.Header()
	hd.Set("X-Content-Type-Options", "nosniff")
	f := fs[name]
	if f == nil {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	if f.named || r.URL.Query().Get("v") == f.hash {
		hd.Set("Cache-Control", immutable)
	} else {
		hd.Set("Cache-Control", revalidate)
	}
	if f.gz != nil {
		hd.Set("Vary", "Accept-Encoding")
	}
	body, etag := f.body, `"`+f.hash+`"`
	if f.gz != nil && acceptsGzip(r) {
		body, etag = f.gz, `"`+f.hash+`-gzip"`
		hd.Set("Content-Encoding", "gzip")
	}
	hd.Set("ETag", etag)
	if etagMatch(r.Header.Get("If-None-Match"), f.hash) {
		hd.Del("Content-Encoding")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd.Set("Content-Type", f.ctype)
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".woff2":
		return "font/woff2"
	case ".woff":
		return "font/woff"
	case ".txt":
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

// etagMatch reports whether an If-None-Match header names either representation (plain or
// gzip) of the content with this hash.
func etagMatch(header, hash string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == `"`+hash+`"` || t == `"`+hash+`-gzip"` {
			return true
		}
	}
	return false
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}
