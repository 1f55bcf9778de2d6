package smtp_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/larkhq/lark/adapters/smtp"
	"github.com/larkhq/lark/adapters/smtp/mailpittest"
)

// selfSigned writes a certificate for 127.0.0.1 and returns its files and a
// pool trusting it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lark test relay"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pool
}

func TestTLSModes(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := selfSigned(t)
	for _, implicit := range []bool{false, true} {
		name := map[bool]string{false: "starttls", true: "implicit tls"}[implicit]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			mp := mailpittest.Start(t, mailpittest.WithTLS(certFile, keyFile, implicit))
			trusting := newSender(t, smtp.Config{URL: mp.SMTPURL(), TLSConfig: &tls.Config{RootCAs: pool}})
			if err := trusting.Send(ctx(t), message("tls@lark.test")); err != nil {
				t.Fatalf("Send over %s: %v", name, err)
			}
			if got := mp.WaitFor(t, 1, 5*time.Second)[0].MessageID; got != "tls@lark.test" {
				t.Errorf("got id %q", got)
			}
			// Without the test CA the certificate is refused and nothing is
			// sent: a set-up failure, so temporary.
			distrusting := newSender(t, smtp.Config{URL: mp.SMTPURL(), Timeout: 2 * time.Second})
			if err := distrusting.Send(ctx(t), message("untrusted@lark.test")); !errors.Is(err, smtp.ErrTemporary) {
				t.Errorf("untrusted certificate: got %v, want ErrTemporary", err)
			}
			if n := len(mp.Messages(t)); n != 1 {
				t.Errorf("%d messages stored, want 1", n)
			}
		})
	}
}
