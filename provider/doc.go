// Package provider is the client of the CaptchaAI (2captcha-compatible)
// in.php/res.php API: one call is one request, with no hidden retries, and
// every answer is classified by the catalogue of package transitions.
//
// # Basics
//
// New checks a Config (the key must be 32 hex characters) and returns a
// Client. Submit sends a task to in.php and returns the provider's id; Poll
// asks res.php for one or many answers; Cost, Balance and Report cover the
// other res.php actions. Validate checks a Request before anything is sent,
// and Submit calls it first.
//
// # Errors
//
// A call fails in one of three ways:
//   - *FieldError (matches ErrInvalid): the request or config is wrong and
//     nothing was sent; the error names the field;
//   - *APIError: the API answered a code; Class is transitions.Classify of
//     it (ClassUnknown keeps unknown codes' raw text);
//   - *TransportError: no API answer (refused, reset, timeout, HTTP
//     status other than 2xx, HTML, empty, truncated, oversized or invalid
//     body). The engine treats it as transient; on a Submit,
//     PossiblyCharged says the provider may have created a task anyway.
//
// # Caveats
//
// The key never appears in an error's text or in %v, %+v or %#v of an
// error, a Config or a Client: errors from net/http, which quote the URL
// and so res.php's query, are rebuilt without it. Proxies in parameters
// carry passwords; use RedactProxy before logging or storing one.
//
// ParseAnswer and ParseBatch are exported for the simulator and tests: they
// accept both the JSON (json=1) and the plain-text answer formats.
package provider
