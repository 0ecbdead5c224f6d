package httptransport

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// pageRequest is the body of the most frequent request: a page of a conversation's messages.
const pageRequest = `{"query":"query MessagesPage($conversationId: ID!, $limit: Int, $offset: Int) { conversation(id: $conversationId) { messages(limit: $limit, offset: $offset) { items { id } } } }","variables":{"conversationId":"1","limit":50,"offset":0},"operationName":"MessagesPage"}`

// BenchmarkReadPOST measures ReadPOST alone on pageRequest: reading and decoding the body.
func BenchmarkReadPOST(b *testing.B) {
	body := []byte(pageRequest)
	rd := bytes.NewReader(body)
	req := httptest.NewRequest(http.MethodPost, "/query", nil)
	req.Header.Set("Content-Type", "application/json")
	req.Body = io.NopCloser(rd)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		rd.Reset(body)
		params, err := ReadPOST(req)
		if err != nil {
			b.Fatal(err)
		}
		if params.Variables["limit"] != json.Number("50") {
			b.Fatal(params.Variables)
		}
	}
}
