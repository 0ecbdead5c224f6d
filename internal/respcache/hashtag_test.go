package respcache

import "testing"

// TestHashTag: the part of a key Redis Cluster hashes, as its documentation has it (keys of one
// hash tag share a slot, which is what the lookup's per-slot MGETs rely on).
func TestHashTag(t *testing.T) {
	for _, tc := range []struct{ key, want string }{
		{"msg:gen:{12}", "12"},
		{"resp:{u3}:ab12", "u3"},
		{"msg:list:{u3}", "u3"},
		{"plain", "plain"},
		{"{user1000}.following", "user1000"},
		{"foo{}{bar}", "foo{}{bar}"}, // an empty first tag: the whole key
		{"foo{{bar}}zap", "{bar"},
		{"foo{bar}{zap}", "bar"},
		{"foo{bar", "foo{bar"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			if got := hashTag(tc.key); got != tc.want {
				t.Errorf("hashTag(%q) = %q, want %q", tc.key, got, tc.want)
			}
		})
	}
}
