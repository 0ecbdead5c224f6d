// Package playground serves GraphiQL, the in-browser GraphQL IDE, from assets
// embedded in the binary.
//
// # What it serves
//
// [Handler] answers two kinds of path and nothing else:
//
//   - "/": the HTML page (GET and HEAD). It carries the [Config] as JSON in
//     <script type="application/json" id="threadline-config"> and links the
//     script and stylesheet under "/playground/". Its icon is an empty data:
//     URL, so that browsers do not ask for /favicon.ico.
//   - "/playground/<file>": the files of dist/ (GET and HEAD): graphiql.js,
//     graphiql.css, fonts/<hash>.woff2 (and .woff) and THIRD_PARTY_LICENSES.txt.
//
// Every other path is 404, and a method other than GET or HEAD on these is
// 405, so the handler can be
// mounted as the catch-all route of a mux:
//
//	mux.Handle("/", playground.Handler(playground.Config{Endpoint: "/query"}))
//
// or on exactly its two routes ("GET /{$}" and "GET /playground/", see
// [AssetsPrefix]). It reads r.URL.Path as is: do not mount it under a
// stripped prefix.
//
// # Where the assets come from
//
// dist/ is built by ops/playground (npm ci && npm run build) from the npm
// packages graphiql 3 (React 18, CodeMirror 5), @graphiql/toolkit and
// graphql-ws, bundled by esbuild into one minified script and one
// stylesheet, and committed. Nothing is loaded from a CDN: the playground
// works offline. GraphiQL 3 rather than 4 or 5 because those run Monaco,
// whose web workers and dynamic styles fight a strict Content-Security-Policy;
// GraphiQL 3 needs neither eval nor workers. The build is reproducible:
// running it again gives byte-identical files.
//
// # Content-Security-Policy
//
// The page is sent with
//
//	default-src 'self'; script-src 'self'; style-src 'self' 'nonce-<per request>';
//	connect-src 'self' ws: wss:; img-src 'self' data:; font-src 'self';
//	object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'
//
// No inline script: the configuration is a JSON data block, which is not
// executed, read by the bundled script. No 'unsafe-inline' style either: the
// style properties that React, CodeMirror and framer-motion set through the
// CSSOM are not subject to style-src, and the one <style> element GraphiQL
// adds (react-remove-scroll, while a menu or dialog is open) carries the
// page's nonce, passed in the JSON config (styleNonce) and handed to the
// get-nonce package by the bundled script. The nonce is 128 random bits, new
// for every page view. img-src allows data: for the few PNGs that GraphiQL's
// stylesheet inlines; the fonts are files. connect-src allows ws: and wss:
// because browsers differ on whether 'self' covers a WebSocket to the same
// host. The page also gets X-Content-Type-Options: nosniff (as does every
// response of the handler), X-Frame-Options: DENY, Referrer-Policy:
// no-referrer and Cache-Control: no-store (it may hold a development token).
//
// # Caching
//
// The assets are served by package staticfiles: the page links the script
// and stylesheet as "?v=<content hash>", cached for a year, and the fonts'
// names are their hashes; anything else is revalidated against its ETag.
// Text assets are gzip-compressed once per process, when the first handler
// is built, and sent compressed to clients that accept gzip (graphiql.js:
// 1.2 MB, 390 KB gzipped).
//
// # Headers and subscriptions
//
// Queries and mutations go by HTTP POST to Config.Endpoint with the headers of
// GraphiQL's headers editor (open by default). Subscriptions go over
// WebSocket (graphql-transport-ws) to the same endpoint, the URL built from
// the page's location (ws: for http:, wss: for https:), and the headers of
// the editor are the connection_init payload, which is where the server reads
// "Authorization" from. Config.DefaultHeaders prefills the editor, for
// example with a development token; GraphiQL does not persist headers in
// localStorage, so the prefilled value comes back on every page load.
package playground

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"github.com/threadline/threadline/internal/staticfiles"
)

//go:embed dist
var dist embed.FS

// Config is what the page tells GraphiQL.
type Config struct {
	// Endpoint is the GraphQL endpoint, a path such as "/query" (the default)
	// or an absolute URL. Subscriptions use the same endpoint over WebSocket.
	Endpoint string
	// Title is the page title and the label in GraphiQL's top-left corner.
	// Default "Threadline".
	Title string
	// DefaultQuery fills the query editor of a new tab. Empty leaves
	// GraphiQL's own welcome text.
	DefaultQuery string
	// DefaultHeaders fills the headers editor of a new tab: a JSON object
	// such as {"Authorization": "Bearer <token>"}, pretty-printed when it is
	// valid JSON. Empty leaves it out of the page altogether.
	DefaultHeaders string
}

const assetsPrefix = "/playground/"

// AssetsPrefix returns the path under which [Handler] serves the assets,
// "/playground/". A caller that does not give the handler the catch-all
// route "/" must route this prefix to it too.
func AssetsPrefix() string { return assetsPrefix }

type handler struct {
	config  pageConfig        // without StyleNonce, which is per request
	css, js string            // asset URLs
	assets  staticfiles.Files // by path relative to dist, e.g. "graphiql.js"
}

// Handler returns the handler of the GraphiQL page at "/" and of its assets
// under [AssetsPrefix]. It panics if the embedded assets are missing, which
// only a broken build can cause.
func Handler(cfg Config) http.Handler {
	assets, err := loadAssetsOnce()
	if err != nil {
		panic("playground: " + err.Error())
	}
	pc := pageConfig{
		Endpoint:       cfg.Endpoint,
		Title:          cfg.Title,
		DefaultQuery:   cfg.DefaultQuery,
		DefaultHeaders: cfg.DefaultHeaders,
	}
	if pc.Endpoint == "" {
		pc.Endpoint = "/query"
	}
	if pc.Title == "" {
		pc.Title = "Threadline"
	}
	if h := strings.TrimSpace(pc.DefaultHeaders); h != "" && json.Valid([]byte(h)) {
		var buf bytes.Buffer
		if json.Indent(&buf, []byte(h), "", "  ") == nil {
			pc.DefaultHeaders = buf.String()
		}
	}
	return &handler{
		config: pc,
		css:    assets.URL(assetsPrefix, "graphiql.css"),
		js:     assets.URL(assetsPrefix, "graphiql.js"),
		assets: assets,
	}
}

// loadAssetsOnce reads, hashes and compresses the embedded files once per
// process (about 40 ms), however many handlers are built.
var loadAssetsOnce = sync.OnceValues(loadAssets)

func loadAssets() (staticfiles.Files, error) {
	return staticfiles.LoadDir(dist, "dist", "run npm ci && npm run build in ops/playground", "graphiql.js", "graphiql.css")
}

// pageConfig is the JSON read by the bundled script (ops/playground/src/index.jsx).
type pageConfig struct {
	Endpoint       string `json:"endpoint"`
	Title          string `json:"title"`
	DefaultQuery   string `json:"defaultQuery"`
	DefaultHeaders string `json:"defaultHeaders,omitempty"`
	// StyleNonce is the nonce of the page's style-src, which GraphiQL gives
	// to the <style> elements it adds (see render).
	StyleNonce string `json:"styleNonce"`
}

// render returns the page whose config carries the style nonce.
//
// GraphiQL's menus and dialogs (Radix, through react-remove-scroll) add a
// <style> element while they are open. The page's CSP has no 'unsafe-inline'
// for styles; it allows this one nonce, which the bundled script hands to
// get-nonce, which react-style-singleton puts on the element.
func (h *handler) render(nonce string) ([]byte, error) {
	pc := h.config
	pc.StyleNonce = nonce
	// encoding/json escapes <, > and & (and U+2028, U+2029), so the JSON can
	// neither close the script element nor open an HTML comment in it.
	cfg, err := json.Marshal(pc)
	if err != nil {
		return nil, err
	}
	return staticfiles.Page{
		Title: pc.Title, CSS: h.css, JS: h.js, ConfigID: "threadline-config", Config: cfg,
		RootID: "graphiql", NoScript: "GraphiQL needs JavaScript.",
	}.Render()
}

// newNonce returns 128 random bits, base64url-encoded.
func newNonce() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.assets.Route(w, r, assetsPrefix, "/") {
		h.servePage(w, r)
	}
}

func (h *handler) servePage(w http.ResponseWriter, r *http.Request) {
	nonce := newNonce()
	page, err := h.render(nonce)
	if err != nil {
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	staticfiles.WritePage(w, r, page, csp(nonce))
}

// csp returns the page's Content-Security-Policy for one style nonce.
func csp(nonce string) string {
	return "default-src 'self'; script-src 'self'; style-src 'self' 'nonce-" + nonce + "'; " +
		"connect-src 'self' ws: wss:; img-src 'self' data:; font-src 'self'; " +
		"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
}
