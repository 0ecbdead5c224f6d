package httpapi

import (
	"net/http"
	"slices"
	"strings"
)

// CORS returns middleware that lets browser apps on the allowed origins (scheme://host[:port];
// "*" for any) call the wrapped handler. A preflight (OPTIONS with
// Access-Control-Request-Method) from an allowed origin is answered here with 204; one from
// another origin gets 403. Other requests pass through, with Access-Control-Allow-Origin when
// their origin is allowed (without it, the browser hides the response from the page). Tokens
// travel in the Authorization header, not cookies, so credentials are not allowed.
func CORS(allowed []string) func(http.Handler) http.Handler {
	anyOrigin := slices.Contains(allowed, "*")
	ok := func(origin string) bool { return anyOrigin || slices.Contains(allowed, origin) }
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			origin := r.Header.Get("Origin")
			if origin == "" {
				next.ServeHTTP(w, r)
				return
			}
			h := w.Header()
			h.Add("Vary", "Origin")
			preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
			if !ok(origin) {
				if preflight {
					w.WriteHeader(http.StatusForbidden)
					return
				}
				next.ServeHTTP(w, r)
				return
			}
			h.Set("Access-Control-Allow-Origin", origin)
			if !preflight {
				h.Set("Access-Control-Expose-Headers", "Retry-After, X-RateLimit-Remaining, X-Request-Id")
				next.ServeHTTP(w, r)
				return
			}
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			h.Set("Access-Control-Allow-Headers", allowHeaders(r.Header.Get("Access-Control-Request-Headers")))
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
		})
	}
}

// corsHeaders are the request headers a browser app may send.
var corsHeaders = []string{"authorization", "content-type", "accept", "x-request-id"}

// allowHeaders answers Access-Control-Request-Headers with those of them we accept.
func allowHeaders(requested string) string {
	var out []string
	for _, h := range strings.Split(requested, ",") {
		if h = strings.ToLower(strings.TrimSpace(h)); slices.Contains(corsHeaders, h) {
			out = append(out, h)
		}
	}
	if len(out) == 0 {
		return strings.Join(corsHeaders, ", ")
	}
	return strings.Join(out, ", ")
}
