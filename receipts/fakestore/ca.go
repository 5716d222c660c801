// Package fakestore stands in for the App Store and Google Play in
// development, tests and load tests. It owns a local certificate authority
// (root, intermediate with Apple's intermediate marker OID, leaf with Apple's
// leaf marker OID, all ECDSA P-256) and mints StoreKit-2-shaped signed
// transactions and notifications with it, so the same receipts.AppleVerifier
// verifies them once its root pool is the fake root. PlayServer fakes the
// Google Play Developer API over HTTP.
//
// Nothing here is trusted in production: a verifier trusts the fake root
// only when it is configured to. The package must not import the receipts
// package (whose tests use it) nor fiber, database drivers or other coinop
// packages.
package fakestore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// Apple's marker OIDs (see receipts/jws.go).
var (
	OIDAppleLeaf         = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 6, 11, 1}
	OIDAppleIntermediate = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 6, 2, 1}
)

// CA is a three-level signing chain: Root signs Intermediate signs Leaf, and
// Leaf's key signs the JWS.
type CA struct {
	Root, Intermediate, Leaf *x509.Certificate
	leafKey                  *ecdsa.PrivateKey
}

// CAOptions shape unusual chains for rejection tests.
type CAOptions struct {
	// OmitMarkerOIDs leaves Apple's marker OIDs out of leaf and intermediate.
	OmitMarkerOIDs bool
	// LeafNotBefore and LeafNotAfter bound the leaf's validity; zero means
	// from an hour ago for ten years.
	LeafNotBefore, LeafNotAfter time.Time
}

// NewCA creates a fresh chain in memory.
func NewCA() (*CA, error) { return NewCAWith(CAOptions{}) }

// NewCAWith creates a fresh chain shaped by o.
func NewCAWith(o CAOptions) (*CA, error) {
	now := time.Now()
	// The issuers must be valid whenever the leaf is.
	from := now.Add(-time.Hour)
	if !o.LeafNotBefore.IsZero() && o.LeafNotBefore.Before(from) {
		from = o.LeafNotBefore
	}
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	interKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	marker := func(oid asn1.ObjectIdentifier) []pkix.Extension {
		if o.OmitMarkerOIDs {
			return nil
		}
		// Apple's certificates carry an ASN.1 NULL as the value.
		return []pkix.Extension{{Id: oid, Value: []byte{0x05, 0x00}}}
	}
	rootTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "coinop fake App Store Root CA", Organization: []string{"coinop fakestore"}},
		NotBefore:             from,
		NotAfter:              now.AddDate(20, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	root, err := issue(rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	interTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "coinop fake Worldwide Developer Relations", Organization: []string{"coinop fakestore"}},
		NotBefore:             from,
		NotAfter:              now.AddDate(15, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		ExtraExtensions:       marker(OIDAppleIntermediate),
	}
	inter, err := issue(interTmpl, root, &interKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	leafTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "coinop fake App Store signing", Organization: []string{"coinop fakestore"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		ExtraExtensions:       marker(OIDAppleLeaf),
	}
	if !o.LeafNotBefore.IsZero() {
		leafTmpl.NotBefore = o.LeafNotBefore
	}
	if !o.LeafNotAfter.IsZero() {
		leafTmpl.NotAfter = o.LeafNotAfter
	}
	leaf, err := issue(leafTmpl, inter, &leafKey.PublicKey, interKey)
	if err != nil {
		return nil, err
	}
	return &CA{Root: root, Intermediate: inter, Leaf: leaf, leafKey: leafKey}, nil
}

func issue(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial.Add(serial, big.NewInt(1))
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("fakestore: creating certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

// Roots returns a pool holding the fake root only: configure it as an
// AppleVerifier's Roots.
func (ca *CA) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Root)
	return p
}

// RootPEM is the fake root certificate, PEM encoded.
func (ca *CA) RootPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Root.Raw})
}

// Chain is the x5c chain in DER: leaf, intermediate, root.
func (ca *CA) Chain() [][]byte {
	return [][]byte{ca.Leaf.Raw, ca.Intermediate.Raw, ca.Root.Raw}
}

const (
	fileRoot  = "root.pem"
	fileInter = "intermediate.pem"
	fileLeaf  = "leaf.pem"
	fileKey   = "leaf-key.pem"
)

// LoadOrCreateCA loads the chain persisted in dir, or creates one and writes
// it there (certificates 0644, the leaf key 0600), so that separate
// processes (the minting command, the server, load generators) agree on it.
// Only the leaf key is kept: the chain cannot issue new certificates.
func LoadOrCreateCA(dir string) (*CA, error) {
	ca, err := loadCA(dir)
	if err == nil {
		return ca, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("fakestore: loading CA from %s: %w", dir, err)
	}
	if ca, err = NewCA(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("fakestore: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.leafKey)
	if err != nil {
		return nil, err
	}
	files := []struct {
		name, typ string
		der       []byte
		mode      os.FileMode
	}{
		{fileRoot, "CERTIFICATE", ca.Root.Raw, 0o644},
		{fileInter, "CERTIFICATE", ca.Intermediate.Raw, 0o644},
		{fileLeaf, "CERTIFICATE", ca.Leaf.Raw, 0o644},
		{fileKey, "PRIVATE KEY", keyDER, 0o600},
	}
	for _, f := range files {
		// Write to a temporary name and rename, so a concurrent loader never
		// sees half a file.
		tmp, err := os.CreateTemp(dir, f.name+".*")
		if err != nil {
			return nil, fmt.Errorf("fakestore: %w", err)
		}
		werr := pem.Encode(tmp, &pem.Block{Type: f.typ, Bytes: f.der})
		cerr := tmp.Close()
		if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), f.mode)); err != nil {
			os.Remove(tmp.Name())
			return nil, fmt.Errorf("fakestore: writing %s: %w", f.name, err)
		}
		if err := os.Rename(tmp.Name(), filepath.Join(dir, f.name)); err != nil {
			return nil, fmt.Errorf("fakestore: %w", err)
		}
	}
	return ca, nil
}

func loadCA(dir string) (*CA, error) {
	read := func(name, typ string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		blk, _ := pem.Decode(b)
		if blk == nil || blk.Type != typ {
			return nil, fmt.Errorf("%s: not a PEM %s", name, typ)
		}
		return blk.Bytes, nil
	}
	var certs [3]*x509.Certificate
	for i, name := range []string{fileRoot, fileInter, fileLeaf} {
		der, err := read(name, "CERTIFICATE")
		if err != nil {
			return nil, err
		}
		if certs[i], err = x509.ParseCertificate(der); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	der, err := read(fileKey, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fileKey, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || !key.PublicKey.Equal(certs[2].PublicKey) {
		return nil, fmt.Errorf("%s: not the leaf certificate's key", fileKey)
	}
	return &CA{Root: certs[0], Intermediate: certs[1], Leaf: certs[2], leafKey: key}, nil
}

// NewCAFromPEM builds a chain from PEM certificates (text before each PEM
// block is ignored) and the leaf's key (PKCS#8 or SEC 1 "EC PRIVATE KEY"),
// for example Apple's test chain from the App Store Server Library.
func NewCAFromPEM(root, intermediate, leaf, leafKey []byte) (*CA, error) {
	var certs [3]*x509.Certificate
	for i, b := range [][]byte{root, intermediate, leaf} {
		blk, _ := pem.Decode(b)
		if blk == nil || blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("fakestore: certificate %d: not a PEM certificate", i)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("fakestore: certificate %d: %w", i, err)
		}
		certs[i] = c
	}
	blk, _ := pem.Decode(leafKey)
	if blk == nil {
		return nil, errors.New("fakestore: leaf key: not PEM")
	}
	var key *ecdsa.PrivateKey
	switch blk.Type {
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("fakestore: leaf key: %w", err)
		}
		key = k
	default:
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("fakestore: leaf key: %w", err)
		}
		var ok bool
		if key, ok = k.(*ecdsa.PrivateKey); !ok {
			return nil, errors.New("fakestore: leaf key: not ECDSA")
		}
	}
	if !key.PublicKey.Equal(certs[2].PublicKey) {
		return nil, errors.New("fakestore: leaf key does not match the leaf certificate")
	}
	return &CA{Root: certs[0], Intermediate: certs[1], Leaf: certs[2], leafKey: key}, nil
}
