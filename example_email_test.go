package wssafe_test

import (
	"errors"
	"fmt"

	"github.com/wssafe/wssafe"
)

func ExampleEmail() {
	for _, addr := range []string{
		"ann@example.com",
		"Ann <ann@example.com>",     // a display name is not an address
		"ann@[192.0.2.1]",           // nor is an address literal
		"ann@bücher.example",        // IDN: refused unless allowed
		`"ann smith"@example.com`,   // quoted: refused unless allowed
		"ann@p\u0430ypal.com",       // Cyrillic "а" among Latin letters
		"ann@example.com\r\nBcc: x", // header injection
	} {
		err := wssafe.Email("email", addr)
		var fe *wssafe.FieldError
		if errors.As(err, &fe) {
			fmt.Printf("%-12s %s\n", fe.Rule, fe.Message)
			continue
		}
		fmt.Println("ok")
	}
	// Output:
	// ok
	// email.syntax must be an email address
	// email.ip_literal must have a domain name, not an address
	// email.idn    must have an ASCII domain
	// email.quoted must not have a quoted local part
	// email.idn    must have an ASCII domain
	// email.domain has an invalid domain
}

func ExampleEmailRule_Canonical() {
	rule := wssafe.EmailRule{AllowIDN: true}
	for _, addr := range []string{
		"Ann@Bücher.Example",
		"ann@XN--BCHER-KVA.example",
		"ann@p\u0430ypal.com",
	} {
		canonical, err := rule.Canonical("email", addr)
		if err != nil {
			fmt.Println("refused:", err)
			continue
		}
		fmt.Println(canonical)
	}
	// Output:
	// Ann@xn--bcher-kva.example
	// ann@xn--bcher-kva.example
	// refused: wssafe: field "email": mixes writing systems (email.mixed_script)
}
