package devstack

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// TLS is the certificates of a stack whose services speak TLS only (Config.TLS), as PEM files.
//
// With it PostgreSQL runs with ssl=on and accepts only TLS connections that present a client
// certificate signed by CAFile (hostssl, clientcert=verify-ca, then scram-sha-256); PgBouncer
// requires TLS and a client certificate from its clients, and speaks TLS to PostgreSQL,
// verifying its certificate and name (server_tls_sslmode=verify-full) and presenting the client
// certificate; Redis listens on a TLS port only (port 0) and requires a client certificate
// (tls-auth-clients yes). The stack's URLs say sslmode=verify-full and name the CA and the client
// certificate, and its RedisURL is rediss://.
type TLS struct {
	// CAFile is the certificate authority that signed the two certificates below: the services
	// trust client certificates it signed, and clients trust the servers' through it.
	CAFile string
	// CertFile and KeyFile are the servers' certificate (valid for 127.0.0.1, ::1 and
	// localhost) and its key: PostgreSQL, PgBouncer and Redis present it, and Redis cluster
	// nodes present it to each other on the cluster bus (it serves as a client certificate too).
	CertFile, KeyFile string
	// ClientCertFile and ClientKeyFile are a client certificate and its key: PgBouncer presents
	// it to PostgreSQL, and clients of the stack present it to the services.
	ClientCertFile, ClientKeyFile string
}

// GenerateTLS writes a new private certificate authority, a server certificate for 127.0.0.1,
// ::1 and localhost, and a client certificate for user, all signed by it and valid for a day,
// into dir (created if missing; keys mode 0600) and returns their files. Each call makes a CA of
// its own, which trusts nothing another call signed.
func GenerateTLS(dir, user string) (TLS, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return TLS{}, fmt.Errorf("devstack: %w", err)
	}
	files := TLS{
		CAFile:   filepath.Join(dir, "ca.crt"),
		CertFile: filepath.Join(dir, "server.crt"), KeyFile: filepath.Join(dir, "server.key"),
		ClientCertFile: filepath.Join(dir, "client.crt"), ClientKeyFile: filepath.Join(dir, "client.key"),
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return TLS{}, fmt.Errorf("devstack: %w", err)
	}
	caTemplate := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "devstack test CA " + now.Format(time.RFC3339Nano)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, ca, err := sign(caTemplate, nil, caKey, caKey)
	if err != nil {
		return TLS{}, err
	}
	if err := writePEM(files.CAFile, "CERTIFICATE", caDER); err != nil {
		return TLS{}, err
	}
	for _, leaf := range []struct {
		template        *x509.Certificate
		certFile, keyFn string
	}{
		{&x509.Certificate{
			Subject:     pkix.Name{CommonName: "localhost"},
			DNSNames:    []string{"localhost"},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
			// Redis nodes present it to each other as clients on the cluster bus.
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}, files.CertFile, files.KeyFile},
		{&x509.Certificate{
			Subject:     pkix.Name{CommonName: user},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}, files.ClientCertFile, files.ClientKeyFile},
	} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return TLS{}, fmt.Errorf("devstack: %w", err)
		}
		leaf.template.NotBefore, leaf.template.NotAfter = caTemplate.NotBefore, caTemplate.NotAfter
		leaf.template.KeyUsage = x509.KeyUsageDigitalSignature
		der, _, err := sign(leaf.template, ca, key, caKey)
		if err != nil {
			return TLS{}, err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return TLS{}, fmt.Errorf("devstack: %w", err)
		}
		if err := writePEM(leaf.certFile, "CERTIFICATE", der); err != nil {
			return TLS{}, err
		}
		if err := writePEM(leaf.keyFn, "PRIVATE KEY", keyDER); err != nil {
			return TLS{}, err
		}
	}
	return files, nil
}

// sign signs template with parent (nil: self-signed) and returns the certificate, DER and parsed.
func sign(template, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey) ([]byte, *x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("devstack: %w", err)
	}
	template.SerialNumber = serial
	if parent == nil {
		parent = template
	}
	der, err := x509.CreateCertificate(rand.Reader, template, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("devstack: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("devstack: %w", err)
	}
	return der, cert, nil
}

func writePEM(path, kind string, der []byte) error {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	return nil
}

// tlsDir is where a stack keeps its copies of the certificates: the services read them as the
// service account, and PostgreSQL refuses a key that others may read.
func tlsDir(dir string) string { return filepath.Join(dir, "tls") }

// copiedTLS is the TLS of the copies under a stack's directory.
func copiedTLS(dir string) *TLS {
	d := tlsDir(dir)
	return &TLS{
		CAFile:   filepath.Join(d, "ca.crt"),
		CertFile: filepath.Join(d, "server.crt"), KeyFile: filepath.Join(d, "server.key"),
		ClientCertFile: filepath.Join(d, "client.crt"), ClientKeyFile: filepath.Join(d, "client.key"),
	}
}

// copyTLS copies the certificates of src into the stack's directory, owned by the service
// account and readable by it alone, and returns the copies.
func (s *Stack) copyTLS(src TLS) (*TLS, error) {
	if err := s.acct.mkdirOwned(tlsDir(s.Dir), 0o700); err != nil {
		return nil, err
	}
	dst := copiedTLS(s.Dir)
	for _, f := range [][2]string{
		{src.CAFile, dst.CAFile}, {src.CertFile, dst.CertFile}, {src.KeyFile, dst.KeyFile},
		{src.ClientCertFile, dst.ClientCertFile}, {src.ClientKeyFile, dst.ClientKeyFile},
	} {
		if f[0] == "" {
			return nil, errors.New("devstack: Config.TLS needs every file: CAFile, CertFile, KeyFile, ClientCertFile, ClientKeyFile")
		}
		b, err := os.ReadFile(f[0])
		if err != nil {
			return nil, fmt.Errorf("devstack: TLS: %w", err)
		}
		if err := s.acct.writeOwned(f[1], b); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// clientTLS is the TLS configuration the stack's own probes connect to Redis with.
func (t *TLS) clientTLS() (*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	ca, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("devstack: TLS: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("devstack: TLS: no certificate in %s", t.CAFile)
	}
	cert, err := tls.LoadX509KeyPair(t.ClientCertFile, t.ClientKeyFile)
	if err != nil {
		return nil, fmt.Errorf("devstack: TLS: %w", err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}, nil
}

// postgresTLSQuery is the query of the stack's postgres:// URLs: sslmode=disable, or with TLS
// sslmode=verify-full and the files that verify the server and identify the client.
func (t *TLS) postgresTLSQuery() string {
	if t == nil {
		return "sslmode=disable"
	}
	q := url.Values{}
	q.Set("sslmode", "verify-full")
	q.Set("sslrootcert", t.CAFile)
	q.Set("sslcert", t.ClientCertFile)
	q.Set("sslkey", t.ClientKeyFile)
	return q.Encode()
}
