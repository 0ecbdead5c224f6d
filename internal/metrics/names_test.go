package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

func TestOperationNameLabels(t *testing.T) {
	s := newNameSet([]string{"Known", "not valid!"}, 2)
	for _, tc := range []struct{ name, want string }{
		{"", OperationAnonymous},
		{"Known", "Known"},
		{"First", "First"},
		{"_second2", "_second2"},
		{"Third", OperationOther}, // past the cap
		{"First", "First"},        // already seen
		{"Known", "Known"},        // known names do not count against the cap
		{"not valid!", OperationOther},
		{"9lives", OperationOther},
		{strings.Repeat("a", 64), OperationOther}, // valid, but past the cap
		{strings.Repeat("a", 65), OperationOther},
		{"Ünïcode", OperationOther},
	} {
		if got := s.label(tc.name); got != tc.want {
			t.Errorf("label(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
	if !validName(strings.Repeat("a", 64)) || validName(strings.Repeat("a", 65)) || validName("") {
		t.Error("validName: length limits wrong")
	}
}

func TestErrorsCountOncePerCodePerResponse(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, Options{})
	m.countErrors(gqlerror.List{
		{Message: "a", Extensions: map[string]any{"code": "UNAUTHENTICATED"}},
		{Message: "b", Extensions: map[string]any{"code": "UNAUTHENTICATED"}},
		{Message: "c", Extensions: map[string]any{"code": "NOT_FOUND"}},
		{Message: "d", Extensions: map[string]any{"code": "SOMETHING_ELSE"}}, // not public: internal
		{Message: "e"},
	})
	for code, want := range map[string]float64{"UNAUTHENTICATED": 1, "NOT_FOUND": 1, "INTERNAL_SERVER_ERROR": 1, "BAD_USER_INPUT": 0} {
		if got := testutilValue(m.graphqlErrors.WithLabelValues(code)); got != want {
			t.Errorf("errors{code=%q} = %v, want %v", code, got, want)
		}
	}
}

func testutilValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
