module github.com/wssafe/wssafe/bench

go 1.25.0

replace github.com/wssafe/wssafe => ../

require (
	github.com/coder/websocket v1.8.15
	github.com/gorilla/websocket v1.5.3
	github.com/lxzan/gws v1.8.9
	github.com/wssafe/wssafe v0.0.0-00010101000000-000000000000
	golang.org/x/time v0.15.0
)

require (
	github.com/dolthub/maphash v0.1.0 // indirect
	github.com/klauspost/compress v1.20.4 // indirect
)
