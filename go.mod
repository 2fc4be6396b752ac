module github.com/wssafe/wssafe

go 1.25.0

require (
	github.com/coder/websocket v1.8.15
	golang.org/x/net v0.58.0
	golang.org/x/time v0.15.0
)

require golang.org/x/text v0.41.0 // indirect

require (
	github.com/stretchr/testify v1.12.1
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)
