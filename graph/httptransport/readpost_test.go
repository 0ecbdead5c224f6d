package httptransport

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/threadline/threadline/graph/client"
)

// pageRequest is the body of the most frequent request: a page of a conversation's messages.
const pageRequest = `{"query":"query MessagesPage($conversationId: ID!, $limit: Int, $offset: Int) { conversation(id: $conversationId) { messages(limit: $limit, offset: $offset) { items { id } } } }","variables":{"conversationId":"1","limit":50,"offset":0},"operationName":"MessagesPage"}`

// BenchmarkReadPOST measures ReadPOST alone: reading and decoding the body of pageRequest, and
// of the page as the generated Go client sends it (graph/client's MessagesPage, whose document
// has an escaped newline or tab every few bytes).
func BenchmarkReadPOST(b *testing.B) {
	generated, err := json.Marshal(map[string]any{
		"query": client.MessagesPage_Operation, "operationName": "MessagesPage",
		"variables": map[string]any{"conversationId": "1", "limit": 50, "offset": 0},
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		body []byte
	}{{"page", []byte(pageRequest)}, {"generated-client", generated}} {
		b.Run(bc.name, func(b *testing.B) {
			rd := bytes.NewReader(bc.body)
			req := httptest.NewRequest(http.MethodPost, "/query", nil)
			req.Header.Set("Content-Type", "application/json")
			req.Body = io.NopCloser(rd)
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.body)))
			for b.Loop() {
				rd.Reset(bc.body)
				params, err := ReadPOST(req)
				if err != nil {
					b.Fatal(err)
				}
				if params.Variables["limit"] != json.Number("50") {
					b.Fatal(params.Variables)
				}
			}
		})
	}
}
