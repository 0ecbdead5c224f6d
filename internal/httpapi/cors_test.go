package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCORS(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := CORS([]string{"https://app.example.com"})(next)
	for _, tc := range []struct {
		name, method, origin, reqMethod string
		status                          int
		allowOrigin                     string
	}{
		{"no origin", http.MethodPost, "", "", http.StatusTeapot, ""},
		{"allowed", http.MethodPost, "https://app.example.com", "", http.StatusTeapot, "https://app.example.com"},
		{"other origin", http.MethodPost, "https://evil.example.com", "", http.StatusTeapot, ""},
		{"preflight", http.MethodOptions, "https://app.example.com", "POST", http.StatusNoContent, "https://app.example.com"},
		{"preflight, other origin", http.MethodOptions, "https://evil.example.com", "POST", http.StatusForbidden, ""},
		{"plain OPTIONS", http.MethodOptions, "https://app.example.com", "", http.StatusTeapot, "https://app.example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/query", nil)
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			if tc.reqMethod != "" {
				r.Header.Set("Access-Control-Request-Method", tc.reqMethod)
				r.Header.Set("Access-Control-Request-Headers", "Authorization, Content-Type, X-Evil")
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.status || w.Header().Get("Access-Control-Allow-Origin") != tc.allowOrigin {
				t.Fatalf("%d %q, want %d %q", w.Code, w.Header().Get("Access-Control-Allow-Origin"), tc.status, tc.allowOrigin)
			}
			if tc.status == http.StatusNoContent {
				if got := w.Header().Get("Access-Control-Allow-Headers"); got != "authorization, content-type" {
					t.Errorf("Allow-Headers %q", got)
				}
				if got := w.Header().Get("Access-Control-Allow-Methods"); got != "GET, POST, OPTIONS" {
					t.Errorf("Allow-Methods %q", got)
				}
			}
		})
	}
	anyOrigin := CORS([]string{"*"})(next)
	r := httptest.NewRequest(http.MethodGet, "/query", nil)
	r.Header.Set("Origin", "http://localhost:3000")
	w := httptest.NewRecorder()
	anyOrigin.ServeHTTP(w, r)
	if w.Header().Get("Access-Control-Allow-Origin") != "http://localhost:3000" {
		t.Fatalf("*: %q", w.Header().Get("Access-Control-Allow-Origin"))
	}
}

func TestBodyLimitAnswersGraphQL(t *testing.T) {
	h := limitBody(10, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	r := httptest.NewRequest(http.MethodPost, "/query", nil)
	r.ContentLength = 11
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusRequestEntityTooLarge || w.Header().Get("Content-Type") != "application/json" ||
		w.Body.String() != `{"errors":[{"extensions":{"code":"BAD_USER_INPUT"},"message":"request body too large"}]}` {
		t.Fatalf("%d %q %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
}
