package connerr

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
)

// The words for errors as the clients wrap them. The errors are built here: the connections
// that produce them are made in the end-to-end TLS test (package main, TestTLS).
func TestReason(t *testing.T) {
	secret := "postgres://threadline:hunter2@db.internal:5432/threadline"
	wrap := func(err error) error { return fmt.Errorf("failed to connect to %s: %w", secret, err) }
	for _, tc := range []struct {
		name    string
		err     error
		usedTLS bool
		want    string
	}{
		{"nil", nil, false, "ok"},
		{"unknown authority", wrap(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), true, "tls: certificate signed by unknown authority"},
		{"wrong name", wrap(&tls.CertificateVerificationError{Err: x509.HostnameError{Host: "db.internal"}}), true, "tls: certificate is not valid for the server's name"},
		{"expired", wrap(x509.CertificateInvalidError{Reason: x509.Expired}), true, "tls: certificate expired or not yet valid"},
		{"not for this use", wrap(x509.CertificateInvalidError{Reason: x509.IncompatibleUsage}), true, "tls: certificate not valid for this use"},
		{"plain port", wrap(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), true, "tls: the server does not speak TLS on this port"},
		{"client certificate refused", wrap(&net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")}), true, "the server refused the TLS handshake: certificate required"},
		{"refused", wrap(&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), false, "connection refused"},
		{"no such host", wrap(&net.DNSError{Name: "db.internal", Err: "no such host", IsNotFound: true}), false, "host name not found"},
		{"closed, plain", wrap(io.EOF), false, "closed the connection during the handshake: is it a TLS port?"},
		{"reset, plain", wrap(&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), false, "closed the connection during the handshake: is it a TLS port?"},
		{"closed, TLS", wrap(io.EOF), true, "closed the connection during the TLS handshake"},
		{"deadline", wrap(context.DeadlineExceeded), false, "no answer in time"},
		{"password", wrap(&pgconn.PgError{Code: "28P01", Message: "password authentication failed for user \"threadline\""}), true, "password authentication failed"},
		{"pg_hba", wrap(&pgconn.PgError{Code: "28000", Message: "no pg_hba.conf entry for host \"10.0.0.1\""}), false, "the server refused the connection (pg_hba.conf, or TLS or a client certificate required)"},
		{"other SQLSTATE", wrap(&pgconn.PgError{Code: "08P01", Message: "no such database: threadline"}), false, "the server refused the connection (SQLSTATE 08P01)"},
		{"redis auth", redisError("WRONGPASS invalid username-password pair"), false, "authentication failed"},
		{"redis other", redisError("CLUSTERDOWN Hash slot not served"), false, "error reply CLUSTERDOWN"},
		{"unknown", wrap(errors.New("something else at " + secret)), false, "unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Reason(tc.err, tc.usedTLS)
			if got != tc.want {
				t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
			}
			for _, leak := range []string{"hunter2", "db.internal", "threadline", "10.0.0.1"} {
				if strings.Contains(got, leak) {
					t.Errorf("Reason says %q", leak)
				}
			}
		})
	}
}

// redisError is an error reply as go-redis returns it.
type redisError string

func (e redisError) Error() string { return string(e) }
func (redisError) RedisError()     {}

var _ redis.Error = redisError("")
