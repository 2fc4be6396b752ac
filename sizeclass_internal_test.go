package wssafe

import (
	"testing"
	"unsafe"
)

// Every open connection holds one Session and one deadlineConn, each
// rounded up by the allocator to its size class: a field that pushes one
// over the class below costs every idle connection the whole step (64
// bytes here), not the field's size. Reorder or shrink before raising
// these.
func TestPerConnectionStructsFitTheirSizeClass(t *testing.T) {
	for _, c := range []struct {
		name  string
		size  uintptr
		class uintptr
	}{
		{"Session", unsafe.Sizeof(Session{}), 640},
		{"deadlineConn", unsafe.Sizeof(deadlineConn{}), 576},
	} {
		if c.size > c.class {
			t.Errorf("%s is %d bytes, over its %d-byte size class", c.name, c.size, c.class)
		}
	}
}
