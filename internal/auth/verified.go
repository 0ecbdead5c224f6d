package auth

import (
	"sync"
	"time"
)

// Verifying a token costs a signature check and a JSON decode on every request, a tenth of an
// executed page's CPU, for the same few tokens over and over. verified remembers the tokens
// that verified, with their claims' times, for at most verifiedTTL: a token seen again within it
// is checked against the clock only (exp, nbf and iat, with Leeway, exactly as a fresh
// verification checks them). A token verified with a key of the JWKS is remembered with the key
// set it was verified against, and forgotten as soon as another set replaces it: a key taken out
// of the JWKS is refused from the next fetch on, as without this cache. Only tokens that
// verified are remembered, and at most verifiedMax of them.
const (
	verifiedTTL = time.Minute
	verifiedMax = 16384
)

type verifiedToken struct {
	id         Identity
	nbf, iat   time.Time
	verifiedAt time.Time
	set        *keySet // the JWKS key set it was verified against; nil: HS256
}

type verifiedCache struct {
	mu sync.Mutex
	m  map[string]verifiedToken
}

// get returns the identity of a token verified less than verifiedTTL ago, against the key set
// current is now (nil: none), that the clock still accepts.
func (c *verifiedCache) get(token string, now time.Time, current *keySet) (Identity, bool) {
	c.mu.Lock()
	v, ok := c.m[token]
	c.mu.Unlock()
	if !ok || now.Sub(v.verifiedAt) >= verifiedTTL || now.Before(v.verifiedAt) || (v.set != nil && v.set != current) {
		return Identity{}, false
	}
	cl := claims{exp: v.id.Expires, nbf: v.nbf, iat: v.iat}
	if cl.checkTimes(now) != nil {
		return Identity{}, false
	}
	return v.id, true
}

func (c *verifiedCache) put(token string, v verifiedToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]verifiedToken)
	}
	if len(c.m) >= verifiedMax {
		for k := range c.m { // drop about an eighth, whichever the map yields first
			delete(c.m, k)
			if len(c.m) < verifiedMax*7/8 {
				break
			}
		}
	}
	c.m[token] = v
}
