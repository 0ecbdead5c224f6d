package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// header is what the protected header says about how to verify a token.
type header struct {
	alg string
	kid string // "": none
}

// parseHeader reads the protected header of a compact JWS. It refuses what it cannot read
// unambiguously (a member named twice, an alg or kid that is not a string) and the extensions
// we do not implement (crit, b64).
func parseHeader(token string) (header, error) {
	if strings.Count(token, ".") != 2 {
		return header{}, refuse(errMalformed, "not a compact JWS (three dot-separated parts)")
	}
	enc, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.Strict().DecodeString(enc)
	if err != nil {
		return header{}, refuse(errMalformed, "header is not base64url: %v", err)
	}
	m, err := decodeObject(raw)
	if err != nil {
		return header{}, refuse(errMalformed, "header: %v", err)
	}
	var h header
	alg, ok := m["alg"]
	if !ok {
		return header{}, refuse(errAlgorithm, "header has no alg")
	}
	if h.alg, ok = jsonString(alg); !ok {
		return header{}, refuse(errMalformed, "header alg is not a string")
	}
	if kid, present := m["kid"]; present {
		if h.kid, ok = jsonString(kid); !ok {
			return header{}, refuse(errMalformed, "header kid is not a string")
		}
	}
	for _, name := range []string{"crit", "b64"} {
		if _, present := m[name]; present {
			return header{}, refuse(errMalformed, "header %q is not supported", name)
		}
	}
	return h, nil
}

// claims are the registered claims of a token whose signature verified.
type claims struct {
	sub      int64
	exp      time.Time
	nbf, iat time.Time // zero: absent
	iss      string
	hasIss   bool
	aud      []string
}

// maxNumericDate is the latest date accepted, 9999-12-31T23:59:59Z, far from int64 overflow.
const maxNumericDate = 253402300799

// parseClaims reads a payload strictly: a JSON object naming no member twice, exp present,
// exp/nbf/iat JSON numbers, sub the canonical decimal form of a positive int64, iss a string,
// aud a string or an array of strings. Other claims are ignored.
func parseClaims(payload []byte) (claims, error) {
	m, err := decodeObject(payload)
	if err != nil {
		return claims{}, refuse(errClaims, "payload: %v", err)
	}
	var c claims
	raw, ok := m["exp"]
	if !ok {
		return claims{}, refuse(errClaims, "exp is missing")
	}
	if c.exp, err = numericDate("exp", raw); err != nil {
		return claims{}, err
	}
	for _, d := range []struct {
		name string
		dst  *time.Time
	}{{"nbf", &c.nbf}, {"iat", &c.iat}} {
		if raw, ok := m[d.name]; ok {
			if *d.dst, err = numericDate(d.name, raw); err != nil {
				return claims{}, err
			}
		}
	}
	raw, ok = m["sub"]
	if !ok {
		return claims{}, refuse(errClaims, "sub is missing")
	}
	sub, ok := jsonString(raw)
	if !ok {
		return claims{}, refuse(errClaims, "sub is not a string: %.40s", raw)
	}
	if c.sub, ok = userID(sub); !ok {
		return claims{}, refuse(errClaims, "sub %.40q is not a user id (a positive integer in canonical decimal form)", sub)
	}
	if raw, ok := m["iss"]; ok {
		if c.iss, ok = jsonString(raw); !ok {
			return claims{}, refuse(errClaims, "iss is not a string")
		}
		c.hasIss = true
	}
	if raw, ok := m["aud"]; ok {
		if c.aud, ok = audience(raw); !ok {
			return claims{}, refuse(errClaims, "aud is neither a string nor an array of strings")
		}
	}
	return c, nil
}

// check refuses claims that are not valid at now, or not for issuer and audience (when set).
func (c claims) check(now time.Time, issuer, audience string) error {
	if err := c.checkTimes(now); err != nil {
		return err
	}
	if issuer != "" && (!c.hasIss || c.iss != issuer) {
		if !c.hasIss {
			return refuse(errClaims, "iss is missing, want %q", issuer)
		}
		return refuse(errClaims, "iss %.100q, want %q", c.iss, issuer)
	}
	if audience != "" && !slices.Contains(c.aud, audience) {
		return refuse(errClaims, "aud %.100q does not contain %q", c.aud, audience)
	}
	return nil
}

// checkTimes checks exp, nbf and iat against now, with Leeway.
func (c claims) checkTimes(now time.Time) error {
	if !now.Before(c.exp.Add(Leeway)) {
		return refuse(errExpired, "expired at %s", c.exp.Format(time.RFC3339))
	}
	if !c.nbf.IsZero() && c.nbf.After(now.Add(Leeway)) {
		return refuse(errNotYetValid, "not valid before %s", c.nbf.Format(time.RFC3339))
	}
	if !c.iat.IsZero() && c.iat.After(now.Add(Leeway)) {
		return refuse(errNotYetValid, "issued in the future, at %s", c.iat.Format(time.RFC3339))
	}
	return nil
}

// userID returns the user id that s spells, if s is the canonical decimal form of a positive
// int64: digits only, no leading zero, at most math.MaxInt64.
func userID(s string) (int64, bool) {
	if s == "" || len(s) > 19 || s[0] < '1' || s[0] > '9' {
		return 0, false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil
}

// numericDate reads a NumericDate: a JSON number of seconds since the epoch, possibly with a
// fraction, between 0 and maxNumericDate. A string, even of digits, is refused.
func numericDate(name string, raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return time.Time{}, refuse(errClaims, "%s is not a JSON number: %.40s", name, raw)
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f < 0 || f > maxNumericDate {
		return time.Time{}, refuse(errClaims, "%s %.40s is out of range", name, raw)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}

// jsonString returns the string raw holds, if raw is a JSON string.
func jsonString(raw json.RawMessage) (string, bool) {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// audience reads aud: one string, or an array of strings.
func audience(raw json.RawMessage) ([]string, bool) {
	if s, ok := jsonString(raw); ok {
		return []string{s}, true
	}
	var list []string
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &list) != nil {
		return nil, false
	}
	return list, true
}

// decodeObject reads a JSON object into its members, refusing one that names a member twice
// (which two readers could resolve differently) and anything after the object.
func decodeObject(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil {
		return nil, err
	} else if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	m := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, _ := tok.(string) // in an object, Token returns names as strings
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("member %.40q appears twice", name)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		m[name] = v
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return m, nil
}
