package redisclient

import (
	"testing"

	"github.com/redis/go-redis/v9"
)

// rediss:// turns TLS on (verifying the server's name), standalone and cluster; redis:// does not.
func TestTLSFromURL(t *testing.T) {
	for url, want := range map[string]bool{
		"redis://127.0.0.1:6379/0":                  false,
		"rediss://cache.example.com:6380/0":         true,
		"rediss://10.0.0.1:7000?addr=10.0.0.2:7000": true,
		"redis://10.0.0.1:7000?cluster=true":        false,
	} {
		c, err := Open(url, Options{})
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		var tls bool
		switch c := c.(type) {
		case *redis.Client:
			tls = c.Options().TLSConfig != nil
			if tls && c.Options().TLSConfig.ServerName != "cache.example.com" {
				t.Errorf("%s: TLS server name %q", url, c.Options().TLSConfig.ServerName)
			}
		case *redis.ClusterClient:
			tls = c.Options().TLSConfig != nil
		}
		if tls != want {
			t.Errorf("%s: TLS %v, want %v", url, tls, want)
		}
		c.Close()
	}
}
