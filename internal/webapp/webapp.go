// Package webapp serves the reference chat web app, embedded in the binary: a page at /app and
// its bundle under /app/assets/. The bundle (dist/) is built from web/ (TypeScript, React 18,
// Apollo Client, graphql-ws) by esbuild, committed, and reproducible: web/check.sh, which make
// test runs, rebuilds it and fails if anything changed. Nothing is loaded from a CDN.
//
// # What it serves
//
// [Handler] answers "/app" (the page, GET and HEAD) and "/app/assets/<file>" (app.js, app.css,
// THIRD_PARTY_LICENSES.txt, through package staticfiles); every other path is 404. The page
// carries its configuration as JSON in <script type="application/json" id="threadline-app">,
// which is data, not code, and links the script and stylesheet by content hash.
//
// # Signing in
//
// The app sends a bearer token on every request and in the WebSocket's connection_init. Where
// the token comes from is the deployment's business (an identity provider's sign-in page): in
// production the page carries none, and the app asks for one. In development, Config.DevToken
// signs tokens with the development secret, the mechanism GraphiQL's page uses for its demo
// user: the page carries a token for the demo user so that the sign-in screen can list users,
// and /app?as=<user id> carries one for that user instead. DevToken is nil in production
// (app.New sets it only when APP_ENV=development), and then neither exists: no token is ever
// signed for a page, whatever the URL says.
//
// # Content-Security-Policy
//
//	default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:;
//	img-src 'self' data:; font-src 'self'; object-src 'none'; base-uri 'none';
//	form-action 'self'; frame-ancestors 'none'
//
// No inline script and no inline style: the app adds no <style> element (React sets style
// properties through the CSSOM, which style-src does not govern). connect-src allows ws: and
// wss: because browsers differ on whether 'self' covers a WebSocket to the same host. The page
// also gets X-Frame-Options: DENY, Referrer-Policy: no-referrer and Cache-Control: no-store (it
// may hold a token).
package webapp

import (
	"embed"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"

	"github.com/threadline/threadline/internal/staticfiles"
)

//go:embed dist
var dist embed.FS

// Path is where the app lives; AssetsPrefix is where its files are.
const (
	Path         = "/app"
	AssetsPrefix = "/app/assets/"
)

// Config is what the page tells the app.
type Config struct {
	// Endpoint is the GraphQL endpoint, "/query" by default. Subscriptions use the same one over
	// WebSocket.
	Endpoint string
	// DevToken, in development only, signs a token for a user: the page carries one for
	// DemoUserID (the sign-in screen lists users with it), or for the user of ?as=<id>. Nil in
	// production: the page carries no token.
	DevToken   func(userID int64) (string, error)
	DemoUserID int64
}

// pageConfig is the JSON read by web/src/config.ts.
type pageConfig struct {
	Endpoint string `json:"endpoint"`
	// DevSignIn says that the sign-in screen may list users and sign in as any of them.
	DevSignIn bool `json:"devSignIn,omitempty"`
	// DirectoryToken is the demo user's token, for the sign-in screen's list of users.
	DirectoryToken string `json:"directoryToken,omitempty"`
	// Token signs the app in (development, ?as=<id>).
	Token string `json:"token,omitempty"`
}

type handler struct {
	cfg     Config
	css, js string
	assets  staticfiles.Files
}

// Handler returns the handler of the app's page and assets. It panics if the embedded bundle is
// missing, which only a broken build can cause.
func Handler(cfg Config) http.Handler {
	assets, err := loadAssetsOnce()
	if err != nil {
		panic("webapp: " + err.Error())
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = "/query"
	}
	return &handler{
		cfg:    cfg,
		css:    assets.URL(AssetsPrefix, "app.css"),
		js:     assets.URL(AssetsPrefix, "app.js"),
		assets: assets,
	}
}

var loadAssetsOnce = sync.OnceValues(func() (staticfiles.Files, error) {
	return staticfiles.LoadDir(dist, "dist", "run npm ci && npm run build in web", "app.js", "app.css")
})

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.assets.Route(w, r, AssetsPrefix, Path) {
		return
	}
	pc, err := h.pageConfig(r)
	if err != nil {
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	// encoding/json escapes <, > and &, so the JSON can neither close the script element nor
	// open an HTML comment in it; Page writes it verbatim.
	cfg, err := json.Marshal(pc)
	if err != nil {
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	page, err := staticfiles.Page{
		Title: "Threadline", CSS: h.css, JS: h.js, ConfigID: "threadline-app", Config: cfg,
		RootID: "root", NoScript: "Threadline needs JavaScript.",
	}.Render()
	if err != nil {
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	staticfiles.WritePage(w, r, page, csp)
}

// pageConfig is the page's configuration for r: in development, a token for ?as=<id> when it
// names a user id, else the demo user's token for the sign-in screen.
func (h *handler) pageConfig(r *http.Request) (pageConfig, error) {
	pc := pageConfig{Endpoint: h.cfg.Endpoint}
	if h.cfg.DevToken == nil {
		return pc, nil
	}
	pc.DevSignIn = true
	if as, err := strconv.ParseInt(r.URL.Query().Get("as"), 10, 64); err == nil && as > 0 {
		tok, err := h.cfg.DevToken(as)
		pc.Token = tok
		return pc, err
	}
	tok, err := h.cfg.DevToken(h.cfg.DemoUserID)
	pc.DirectoryToken = tok
	return pc, err
}

const csp = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; " +
	"img-src 'self' data:; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
