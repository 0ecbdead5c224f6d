// Package connerr says why a connection to a dependency (PostgreSQL through PgBouncer, Redis)
// failed, in words an operator acts on: "connection refused", "tls: certificate signed by
// unknown authority", "closed the connection during the handshake: is it a TLS port?".
//
// Reason's words come from a fixed vocabulary and never from the error's text: no host, user,
// database, URL or password can reach them, so they may be served where strangers read them
// (/readyz is on the public listener). The error itself, with the address, belongs in the log.
package connerr

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
)

// Reason returns why err, the failure of a connection or of a ping over one, happened. usedTLS
// tells whether the client spoke TLS: a server that closes the connection at once on a client
// that did not is most likely a TLS port. nil is "ok"; an error it does not recognise is
// "unavailable".
func Reason(err error, usedTLS bool) string {
	if err == nil {
		return "ok"
	}
	// Certificates first: a failed verification also ends the connection.
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var header tls.RecordHeaderError
	var pgErr *pgconn.PgError
	var op *net.OpError
	var dns *net.DNSError
	switch {
	case errors.As(err, &unknown):
		return "tls: certificate signed by unknown authority"
	case errors.As(err, &hostname):
		return "tls: certificate is not valid for the server's name"
	case errors.As(err, &invalid):
		if invalid.Reason == x509.Expired {
			return "tls: certificate expired or not yet valid"
		}
		return "tls: certificate not valid for this use"
	case errors.As(err, &header):
		return "tls: the server does not speak TLS on this port"
	case errors.As(err, &op) && op.Op == "remote error":
		// A TLS alert from the server; its text is the alert's name ("tls: certificate
		// required", "tls: unknown certificate authority", …).
		return "the server refused the TLS handshake: " + alertName(op.Err)
	case errors.As(err, &pgErr):
		return postgresReason(pgErr)
	case isRedisError(err):
		return redisReason(err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &dns):
		return "host name not found"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		if usedTLS {
			return "closed the connection during the TLS handshake"
		}
		return "closed the connection during the handshake: is it a TLS port?"
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return "no answer in time"
	case errors.Is(err, context.Canceled):
		return "check cancelled"
	}
	return "unavailable"
}

// alertName is a TLS alert's name: crypto/tls reports a received alert as a "remote error"
// whose text is "tls: " and the name from its fixed table ("alert(N)" when unknown).
func alertName(err error) string {
	if s, ok := strings.CutPrefix(err.Error(), "tls: "); ok {
		return s
	}
	return "alert"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// postgresReason names a PostgreSQL (or PgBouncer) refusal by its SQLSTATE class; the
// message, which may name the user and the database, stays out.
func postgresReason(e *pgconn.PgError) string {
	switch e.Code {
	case "28P01":
		return "password authentication failed"
	case "28000":
		return "the server refused the connection (pg_hba.conf, or TLS or a client certificate required)"
	case "3D000":
		return "database does not exist"
	case "53300":
		return "too many connections"
	case "57P03":
		return "the server is starting up or shutting down"
	}
	return "the server refused the connection (SQLSTATE " + e.Code + ")"
}

func isRedisError(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

// redisReason names a Redis error reply by its code, the reply's first word (NOAUTH,
// WRONGPASS, LOADING, CLUSTERDOWN, …); the rest of the reply stays out.
func redisReason(err error) string {
	var re redis.Error
	errors.As(err, &re)
	code, _, _ := strings.Cut(re.Error(), " ")
	switch code {
	case "NOAUTH", "WRONGPASS":
		return "authentication failed"
	case "LOADING":
		return "loading its data set"
	}
	if code == "" || strings.ToUpper(code) != code || len(code) > 20 {
		return "error reply"
	}
	return "error reply " + code
}
