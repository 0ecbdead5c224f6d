package httptransport_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// checkFuzzResponse: whatever the request, the answer is a known status and a GraphQL response.
func checkFuzzResponse(t *testing.T, rec *httptest.ResponseRecorder) {
	switch rec.Code {
	case http.StatusOK, http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusUnsupportedMediaType, http.StatusRequestEntityTooLarge:
	default:
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("not a JSON object (%v): %q", err, rec.Body)
	}
	_, data := body["data"]
	_, errs := body["errors"]
	if !data && !errs {
		t.Fatalf("neither data nor errors: %s", rec.Body)
	}
}

// FuzzPOST decodes arbitrary request bodies.
func FuzzPOST(f *testing.F) {
	s := newServer(f)
	f.Add(`{"query":"{ hello }"}`, "application/json")
	f.Fuzz(func(t *testing.T, body, contentType string) {
		req := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		req.Body = http.MaxBytesReader(httptest.NewRecorder(), req.Body, 4096)
		rec := httptest.NewRecorder()
		s.h.ServeHTTP(rec, req)
		checkFuzzResponse(t, rec)
	})
}

// FuzzGET decodes arbitrary URL query strings.
func FuzzGET(f *testing.F) {
	s := newServer(f)
	f.Add(`query=%7B+hello+%7D`)
	f.Fuzz(func(t *testing.T, rawQuery string) {
		req := httptest.NewRequest(http.MethodGet, "/query", nil)
		req.URL.RawQuery = rawQuery
		rec := httptest.NewRecorder()
		s.h.ServeHTTP(rec, req)
		checkFuzzResponse(t, rec)
	})
}
