package wssafe_test

import (
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wssafe/wssafe"
)

func TestDigest(t *testing.T) {
	t.Parallel()
	// FIPS 180-2 test vector.
	const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	d := wssafe.Digest("abc")
	assert.Equal(t, abc, hex.EncodeToString(d[:]))
	m := wssafe.Message{Type: wssafe.MessageText, Data: []byte("abc")}
	assert.Equal(t, d, wssafe.Digest(m.Data))
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	ep, err := wssafe.New(echo, &wssafe.Options{FingerprintKey: key})
	require.NoError(t, err)
	same, err := wssafe.New(echo, &wssafe.Options{FingerprintKey: key})
	require.NoError(t, err)
	other, err := wssafe.New(echo, nil)
	require.NoError(t, err)

	secret := []byte("1234") // a short secret a plain hash would give away
	fp := ep.Fingerprint(secret)
	assert.Len(t, fp, 16)
	assert.Equal(t, fp, same.Fingerprint(secret), "one key, one fingerprint")
	assert.NotEqual(t, fp, other.Fingerprint(secret), "fingerprints are keyed")
	d := wssafe.Digest(secret)
	assert.NotEqual(t, fp, hex.EncodeToString(d[:8]), "a fingerprint is not a plain hash")
	assert.NotEqual(t, fp, ep.Fingerprint([]byte("1235")))

}
