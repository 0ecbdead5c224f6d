package redisclient

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/internal/devstack"
	"github.com/threadline/threadline/internal/testenv"
)

// Bad TLS files stop Open with an error that names the variable and what is wrong with it.
func TestOpenTLSFileErrors(t *testing.T) {
	certs, other := testenv.TLS(t), testenv.TLS(t)
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	const url = "rediss://127.0.0.1:6380/0"
	for _, tc := range []struct {
		name  string
		url   string
		files TLSFiles
		want  []string // in the error
	}{
		{"CA missing", url, TLSFiles{CAFile: missing}, []string{"REDIS_TLS_CA_FILE", "no such file"}},
		{"CA not PEM", url, TLSFiles{CAFile: notPEM}, []string{"REDIS_TLS_CA_FILE", "holds no PEM certificate"}},
		{"certificate without key", url, TLSFiles{CAFile: certs.CAFile, CertFile: certs.ClientCertFile}, []string{"set both or neither"}},
		{"key without certificate", url, TLSFiles{KeyFile: certs.ClientKeyFile}, []string{"set both or neither"}},
		{"certificate missing", url, TLSFiles{CertFile: missing, KeyFile: certs.ClientKeyFile}, []string{"REDIS_TLS_CERT_FILE", "no such file"}},
		{"key missing", url, TLSFiles{CertFile: certs.ClientCertFile, KeyFile: missing}, []string{"REDIS_TLS_KEY_FILE", "no such file"}},
		{"certificate not PEM", url, TLSFiles{CertFile: notPEM, KeyFile: certs.ClientKeyFile}, []string{"REDIS_TLS_CERT_FILE", "PEM data in certificate input"}},
		{"key not PEM", url, TLSFiles{CertFile: certs.ClientCertFile, KeyFile: notPEM}, []string{"REDIS_TLS_KEY_FILE", "PEM data in key input"}},
		{"key of another certificate", url, TLSFiles{CertFile: certs.ClientCertFile, KeyFile: other.ClientKeyFile}, []string{"private key does not match public key"}},
		{"plain URL", "redis://127.0.0.1:6379/0", TLSFiles{CAFile: certs.CAFile}, []string{"REDIS_URL is redis://", "use rediss://"}},
		{"plain cluster URL", "redis://127.0.0.1:7000?addr=127.0.0.1:7001", TLSFiles{CAFile: certs.CAFile}, []string{"use rediss://"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Open(tc.url, Options{TLS: tc.files})
			if err == nil {
				c.Close()
				t.Fatal("opened")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// A Redis and a cluster on TLS ports that require client certificates answer a client with the
// private CA and a client certificate; with another CA the client reports the unknown authority.
func TestOpenTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Redis")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	certs, other := testenv.TLS(t), testenv.TLS(t)
	addr, stop, err := devstack.StartRedisServerTLS(ctx, t.TempDir(), 0, certs)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	nodes, stopCluster, err := devstack.StartRedisClusterTLS(ctx, t.TempDir(), [3]int{}, certs)
	if err != nil {
		t.Fatal(err)
	}
	defer stopCluster()
	files := TLSFiles{CAFile: certs.CAFile, CertFile: certs.ClientCertFile, KeyFile: certs.ClientKeyFile}
	wrongCA := files
	wrongCA.CAFile = other.CAFile
	for _, tc := range []struct {
		name  string
		url   string
		files TLSFiles
		ok    bool
	}{
		{"standalone", "rediss://" + addr + "/0", files, true},
		{"cluster", "rediss://" + nodes[0] + "?addr=" + nodes[1] + "&addr=" + nodes[2], files, true},
		{"standalone, another CA", "rediss://" + addr + "/0", wrongCA, false},
		{"cluster, another CA", "rediss://" + nodes[0] + "?addr=" + nodes[1], wrongCA, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Open(tc.url, Options{TLS: tc.files, DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = c.Set(ctx, "{conv:1}:k", "v", time.Minute).Err()
			var unknown x509.UnknownAuthorityError
			switch {
			case tc.ok && err != nil:
				t.Fatalf("SET: %v", err)
			case !tc.ok && !errors.As(err, &unknown):
				t.Fatalf("SET: %v, want an unknown authority", err)
			}
			if _, cluster := c.(*redis.ClusterClient); cluster != strings.Contains(tc.url, "addr=") {
				t.Errorf("client %T", c)
			}
		})
	}
}
