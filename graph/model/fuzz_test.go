package model_test

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/threadline/threadline/graph/model"
	"github.com/threadline/threadline/internal/apperr"
)

// FuzzUnmarshalID: an ID is accepted, as a string or a JSON number, only when it is a positive
// int64, and then it marshals back to the same number.
func FuzzUnmarshalID(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		for _, v := range []any{s, json.Number(s)} {
			id, err := model.UnmarshalID(v)
			if err != nil {
				if codeOf(err) != apperr.BadUserInput {
					t.Fatalf("%#v: %v is not BAD_USER_INPUT", v, err)
				}
				continue
			}
			if id < 1 {
				t.Fatalf("%#v accepted as %d", v, id)
			}
			var buf bytes.Buffer
			model.MarshalID(id).MarshalGQL(&buf)
			if buf.String() != strconv.Quote(strconv.FormatInt(id, 10)) {
				t.Fatalf("%d marshals to %s", id, buf.String())
			}
		}
	})
}

// codeOf is err's public code ("" when err is not public).
func codeOf(err error) apperr.Code {
	if pub := apperr.Public(err); pub != nil {
		return pub.Code
	}
	return ""
}
