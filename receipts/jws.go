package receipts

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// Apple's marker OIDs: the leaf of a chain that signs App Store data carries
// oidAppleLeaf, its issuer (Apple Worldwide Developer Relations) carries
// oidAppleIntermediate. A certificate for anything else that chains to
// Apple's root lacks them.
var (
	oidAppleLeaf         = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 6, 11, 1}
	oidAppleIntermediate = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 6, 2, 1}
)

// maxJWSLen bounds one compact JWS. Apple's are 3 to 5 KB; a notification
// carries two of them inside its own payload.
const maxJWSLen = 64 << 10

type jwsHeader struct {
	Alg  string   `json:"alg"`
	X5c  []string `json:"x5c"`
	Crit []string `json:"crit"`
}

type compactJWS struct {
	header       jwsHeader
	payload      []byte
	signingInput string
	sig          []byte
}

var b64url = base64.RawURLEncoding.Strict()

// parseJWS splits and decodes a compact JWS without trusting any of it.
func parseJWS(s string) (*compactJWS, error) {
	if len(s) == 0 {
		return nil, invalid(ReasonFormat, "empty JWS")
	}
	if len(s) > maxJWSLen {
		return nil, invalid(ReasonFormat, "JWS longer than %d bytes", maxJWSLen)
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return nil, invalid(ReasonFormat, "JWS has %d parts, want 3", len(parts))
	}
	hb, err := b64url.DecodeString(parts[0])
	if err != nil {
		return nil, invalid(ReasonFormat, "JWS header is not base64url")
	}
	var j compactJWS
	if err := json.Unmarshal(hb, &j.header); err != nil {
		return nil, invalid(ReasonFormat, "JWS header is not a JSON object")
	}
	if j.payload, err = b64url.DecodeString(parts[1]); err != nil {
		return nil, invalid(ReasonFormat, "JWS payload is not base64url")
	}
	if !json.Valid(j.payload) || len(bytes.TrimSpace(j.payload)) == 0 || bytes.TrimSpace(j.payload)[0] != '{' {
		return nil, invalid(ReasonFormat, "JWS payload is not a JSON object")
	}
	if j.sig, err = b64url.DecodeString(parts[2]); err != nil {
		return nil, invalid(ReasonFormat, "JWS signature is not base64url")
	}
	j.signingInput = parts[0] + "." + parts[1]
	return &j, nil
}

// checkAlg accepts ES256 and nothing else: no "none", no HMAC (whose key an
// attacker would choose), no RSA.
func (j *compactJWS) checkAlg() error {
	if j.header.Alg != "ES256" {
		return invalid(ReasonSignature, "JWS alg %q, want ES256", j.header.Alg)
	}
	if len(j.header.Crit) > 0 {
		return invalid(ReasonSignature, "JWS has critical header parameters %q", j.header.Crit)
	}
	return nil
}

// signedDateOf reads the signedDate claim (ms since the epoch) of an
// unverified payload. It only picks the time at which the chain is checked.
func signedDateOf(payload []byte) (time.Time, bool) {
	var c struct {
		SignedDate json.Number `json:"signedDate"`
	}
	if json.Unmarshal(payload, &c) != nil || c.SignedDate == "" {
		return time.Time{}, false
	}
	ms, err := c.SignedDate.Int64()
	if err != nil || ms <= 0 {
		return time.Time{}, false
	}
	return msTime(ms), true
}

// verifyJWS checks alg, the x5c chain against roots at the payload's
// signedDate (now when absent), Apple's marker OIDs and the ES256 signature
// with the leaf's key, and returns the verified payload.
func verifyJWS(s string, roots *x509.CertPool, now time.Time) ([]byte, error) {
	j, err := parseJWS(s)
	if err != nil {
		return nil, err
	}
	if err := j.checkAlg(); err != nil {
		return nil, err
	}
	if len(j.header.X5c) == 0 {
		return nil, invalid(ReasonChain, "JWS header has no x5c certificate chain")
	}
	// Apple sends exactly leaf, intermediate, root; the verified chain must
	// be exactly leaf, that intermediate, a root from the pool.
	if len(j.header.X5c) != 3 {
		return nil, invalid(ReasonChain, "x5c has %d certificates, want 3", len(j.header.X5c))
	}
	var certs [3]*x509.Certificate
	for i, enc := range j.header.X5c {
		der, err := base64.StdEncoding.Strict().DecodeString(enc)
		if err != nil {
			return nil, invalid(ReasonChain, "x5c[%d] is not base64", i)
		}
		if certs[i], err = x509.ParseCertificate(der); err != nil {
			return nil, invalid(ReasonChain, "x5c[%d] is not a certificate: %v", i, err)
		}
	}
	leaf, inter := certs[0], certs[1]
	// certs[2] is not trusted for anything: the root comes from the pool.

	if !hasExtension(leaf, oidAppleLeaf) {
		return nil, invalid(ReasonChain, "leaf certificate lacks Apple's marker OID %v", oidAppleLeaf)
	}
	if !hasExtension(inter, oidAppleIntermediate) {
		return nil, invalid(ReasonChain, "intermediate certificate lacks Apple's marker OID %v", oidAppleIntermediate)
	}
	// We understand the marker extensions, so they must not fail the chain
	// check should they ever be marked critical.
	dropHandled(leaf, oidAppleLeaf)
	dropHandled(inter, oidAppleIntermediate)

	at := now
	if t, ok := signedDateOf(j.payload); ok {
		at = t
	}
	intermediates := x509.NewCertPool()
	intermediates.AddCert(inter)
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, invalid(ReasonChain, "certificate chain: %v", err)
	}
	ok := false
	for _, c := range chains {
		if len(c) == 3 && c[1].Equal(inter) {
			ok = true
			break
		}
	}
	if !ok {
		return nil, invalid(ReasonChain, "certificate chain is not leaf, intermediate, root")
	}

	pub, isEC := leaf.PublicKey.(*ecdsa.PublicKey)
	if !isEC || pub.Curve != elliptic.P256() {
		return nil, invalid(ReasonSignature, "leaf key is not ECDSA P-256")
	}
	if len(j.sig) != 64 {
		return nil, invalid(ReasonSignature, "ES256 signature is %d bytes, want 64", len(j.sig))
	}
	r := new(big.Int).SetBytes(j.sig[:32])
	sv := new(big.Int).SetBytes(j.sig[32:])
	h := sha256.Sum256([]byte(j.signingInput))
	if !ecdsa.Verify(pub, h[:], r, sv) {
		return nil, invalid(ReasonSignature, "ES256 signature does not verify")
	}
	return j.payload, nil
}

// decodeUnverifiedJWS returns the payload of a JWS whose signature is not
// checked: only for StoreKit testing in Xcode, which no store signs.
func decodeUnverifiedJWS(s string) ([]byte, error) {
	j, err := parseJWS(s)
	if err != nil {
		return nil, err
	}
	if err := j.checkAlg(); err != nil {
		return nil, err
	}
	return j.payload, nil
}

func hasExtension(c *x509.Certificate, oid asn1.ObjectIdentifier) bool {
	for _, e := range c.Extensions {
		if e.Id.Equal(oid) {
			return true
		}
	}
	return false
}

func dropHandled(c *x509.Certificate, oid asn1.ObjectIdentifier) {
	kept := c.UnhandledCriticalExtensions[:0]
	for _, id := range c.UnhandledCriticalExtensions {
		if !id.Equal(oid) {
			kept = append(kept, id)
		}
	}
	c.UnhandledCriticalExtensions = kept
}

// normalizeMillis rewrites fractional numbers (Xcode writes dates as
// 1697679936049.7297) as integers so the payload decodes into go-iap's
// int64 claim fields.
func normalizeMillis(payload []byte) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	var walk func(any) any
	walk = func(v any) any {
		switch t := v.(type) {
		case map[string]any:
			for k, x := range t {
				t[k] = walk(x)
			}
		case []any:
			for i, x := range t {
				t[i] = walk(x)
			}
		case json.Number:
			if _, err := t.Int64(); err == nil {
				return t
			}
			if f, err := t.Float64(); err == nil && f > -9e18 && f < 9e18 {
				return json.Number(strconv.FormatInt(int64(f), 10))
			}
		}
		return v
	}
	return json.Marshal(walk(v))
}
