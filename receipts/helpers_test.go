package receipts

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coinop/coinop/receipts/fakestore"
)

// vectorsDir holds Apple's published test vectors (origin and licence in its
// README.md).
const vectorsDir = "testdata/appstore"

func vector(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectorsDir, name))
	if err != nil {
		t.Fatalf("Apple test vector %s missing from %s: %v", name, vectorsDir, err)
	}
	return b
}

func vectorRoots(t testing.TB) *x509.CertPool {
	t.Helper()
	c, err := x509.ParseCertificate(vector(t, "testCA.der"))
	if err != nil {
		t.Fatalf("testCA.der: %v", err)
	}
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}

func wantReason(t testing.TB, err error, want Reason) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want InvalidError %q", want)
	}
	var ie *InvalidError
	if !errors.As(err, &ie) {
		t.Fatalf("got %T %v, want InvalidError %q", err, err, want)
	}
	if ie.Reason != want {
		t.Fatalf("got reason %q (%v), want %q", ie.Reason, err, want)
	}
}

func newCA(t testing.TB, o fakestore.CAOptions) *fakestore.CA {
	t.Helper()
	ca, err := fakestore.NewCAWith(o)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// testNow is the verifiers' clock: the fake CAs are issued an hour before
// the real now, so tests cannot use a fixed date.
var testNow = time.Now().UTC().Truncate(time.Millisecond)

const (
	testBundle     = "com.coinop.game"
	testAppAppleID = 1234567890
)

func newVerifier(t testing.TB, roots *x509.CertPool, env Environment, bundle string) *AppleVerifier {
	t.Helper()
	v, err := NewAppleVerifier(AppleConfig{
		BundleID:    bundle,
		AppAppleID:  testAppAppleID,
		Environment: env,
		Roots:       roots,
		Now:         func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}
