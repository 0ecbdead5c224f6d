package redisclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSFiles name the PEM files of a private deployment's Redis TLS (REDIS_TLS_CA_FILE,
// REDIS_TLS_CERT_FILE, REDIS_TLS_KEY_FILE). All are optional: CAFile replaces the system's
// roots with the certificate authorities it holds; CertFile and KeyFile, set together, are the
// client certificate the client presents (Redis's tls-auth-clients). They apply to a standalone
// Redis and to every node of a cluster, and only with rediss://: a redis:// URL with any of
// them set is refused, because a URL that says plain text must mean it.
type TLSFiles struct {
	CAFile, CertFile, KeyFile string
}

func (f TLSFiles) set() bool { return f.CAFile != "" || f.CertFile != "" || f.KeyFile != "" }

// tlsConfig is the client's TLS configuration: the server's certificate verified against
// files' CA (or the system's roots) and for serverName, files' client certificate presented.
// An empty serverName takes each connection's host (crypto/tls does so for an unset
// ServerName): the way a cluster's nodes, each with its own name, are verified. Errors name
// the variable and the file, never the files' content.
func tlsConfig(files TLSFiles, serverName string) (*tls.Config, error) {
	c := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if files.CAFile != "" {
		pem, err := os.ReadFile(files.CAFile)
		if err != nil {
			return nil, fmt.Errorf("config: REDIS_TLS_CA_FILE: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("config: REDIS_TLS_CA_FILE: %s holds no PEM certificate", files.CAFile)
		}
	}
	if (files.CertFile == "") != (files.KeyFile == "") {
		return nil, errors.New("config: REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together: set both or neither")
	}
	if files.CertFile != "" {
		for _, f := range []struct{ name, path string }{{"REDIS_TLS_CERT_FILE", files.CertFile}, {"REDIS_TLS_KEY_FILE", files.KeyFile}} {
			if _, err := os.Stat(f.path); err != nil {
				return nil, fmt.Errorf("config: %s: %w", f.name, err)
			}
		}
		// LoadX509KeyPair says which part is wrong: no PEM data in either file, or a key that
		// is not the certificate's. Its messages quote no key material.
		pair, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("config: REDIS_TLS_CERT_FILE %s and REDIS_TLS_KEY_FILE %s: %w", files.CertFile, files.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}
