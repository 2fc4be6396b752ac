package serve

import (
	"flag"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCompressionFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		def  Flags
		want bool
	}{
		{nil, Flags{}, false},
		{[]string{"-compression"}, Flags{}, true},
		{[]string{"-compression=false"}, Flags{Compression: true}, false},
	} {
		var f Flags
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		f.Register(fs, tc.def)
		require.NoError(t, fs.Parse(tc.args))
		o, err := f.Options(nil)
		require.NoError(t, err)
		assert.Equal(t, tc.want, o.Compression, "%q", tc.args)
	}
}
