package wssafe

import (
	"io"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// chunkReader hands out data in chunks of varying size, the last one
// together with io.EOF when eofWithData is set, as a message reader may.
type chunkReader struct {
	data        []byte
	size        int
	eofWithData bool
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.size, len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	r.size = r.size%7 + 1 // vary where the chunks split runes
	if len(r.data) == 0 && r.eofWithData {
		return n, io.EOF
	}
	return n, nil
}

// FuzzReadAllUTF8 checks that validating text chunk by chunk, with runes
// split anywhere, agrees with utf8.Valid on the whole message, and that the
// bytes read are the bytes sent.
func FuzzReadAllUTF8(f *testing.F) {
	for _, s := range []string{"", "hello", "κόσμε €𝄞", "\xff", "ab\xe2\x82", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\xaf", "€€€€€€€€"} {
		f.Add([]byte(s), uint8(1), false)
		f.Add([]byte(s), uint8(2), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8, eofWithData bool) {
		r := &chunkReader{data: append([]byte(nil), data...), size: int(chunk)%7 + 1, eofWithData: eofWithData}
		got, err := readAll(r, make([]byte, 0, int(chunk)%5), true, -1)
		if !utf8.Valid(data) {
			require.ErrorIs(t, err, ErrInvalidUTF8)
			return
		}
		require.NoError(t, err)
		require.Equal(t, string(data), string(got))
	})
}

func TestReadAllWithoutUTF8Check(t *testing.T) {
	t.Parallel()
	got, err := readAll(&chunkReader{data: []byte("\xff\xfe"), size: 1}, nil, false, -1)
	require.NoError(t, err)
	require.Equal(t, "\xff\xfe", string(got))
}
