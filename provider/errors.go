package provider

import (
	"errors"
	"fmt"
	"strings"

	"github.com/captchafsm/captchafsm/transitions"
)

// ErrInvalid is wrapped by every error of New, Validate and the checks of a
// call's arguments: the request is wrong and nothing was sent. The concrete
// error is a *FieldError naming the field.
var ErrInvalid = errors.New("provider: invalid request")

// ErrMalformed is wrapped by the errors of ParseAnswer and ParseBatch, and by
// the *TransportError of a call whose answer was not an API answer (an HTML
// page, an empty, truncated or oversized body, invalid JSON).
var ErrMalformed = errors.New("provider: malformed answer")

// FieldError is a request or configuration that is wrong before anything is
// sent. Field is the parameter's name as the API spells it ("pageurl",
// "proxytype") or the Config field ("key", "base_url"). It matches ErrInvalid
// with errors.Is. Problem never contains the API key or a proxy password.
type FieldError struct {
	Field   string
	Problem string
}

// Error returns "provider: <field>: <problem>".
func (e *FieldError) Error() string {
	return "provider: " + e.Field + ": " + e.Problem
}

// Is reports whether target is ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// APIError is an answer of the API that carries a code instead of a result:
// ERROR_ZERO_BALANCE, CAPCHA_NOT_READY (from Cost), a ban such as
// "ERROR: 1001", or a code the catalogue does not know (Class is then
// transitions.ClassUnknown and Code keeps the raw text).
type APIError struct {
	// Endpoint is "in.php" or "res.php".
	Endpoint string
	// Code is the provider's code, as it answered it.
	Code string
	// Class is transitions.Classify(Code).
	Class transitions.Class
	// ErrorText is the provider's own explanation of Code (the error_text
	// of a JSON answer), printable, at most 512 bytes, with the key and
	// any login in it hidden (RedactText); "" when the answer had none.
	ErrorText string
}

// Error returns "provider: <endpoint>: <code> (<class>)", followed by
// ": <error text>" when the provider gave one.
func (e *APIError) Error() string {
	s := "provider: " + e.Endpoint + ": " + e.Code + " (" + string(e.Class) + ")"
	if e.ErrorText != "" {
		s += ": " + e.ErrorText
	}
	return s
}

// Is reports whether target is an *APIError with the same Code (and the same
// Endpoint, when target names one), so that
// errors.Is(err, &provider.APIError{Code: "ERROR_ZERO_BALANCE"}) works.
func (e *APIError) Is(target error) bool {
	t, ok := target.(*APIError)
	if !ok || t == nil {
		return false
	}
	return t.Code == e.Code && (t.Endpoint == "" || t.Endpoint == e.Endpoint)
}

// TransportError is a call that got no API answer: the connection was
// refused or reset, the request timed out, the server answered an HTTP
// status other than 2xx, or the body was not an API answer (HTML, empty,
// truncated, larger than Config.MaxBody, invalid JSON). The engine treats
// it as transient. It never contains the API key.
type TransportError struct {
	// Endpoint is "in.php" or "res.php".
	Endpoint string
	// Status is the HTTP status code, 0 when no response was read.
	Status int
	// PossiblyCharged is set on a Submit whose request may have reached the
	// server (any failure after the request was written): the provider may
	// have created, and will charge, a task whose id we never learnt.
	PossiblyCharged bool
	// Err is the cause; nil for a bare HTTP status.
	Err error
}

// Error returns "provider: <endpoint>: transport: <cause>", with
// " (possibly charged)" appended when PossiblyCharged is set.
func (e *TransportError) Error() string {
	var b strings.Builder
	b.WriteString("provider: ")
	b.WriteString(e.Endpoint)
	b.WriteString(": transport: ")
	switch {
	case e.Status != 0 && e.Err != nil:
		fmt.Fprintf(&b, "HTTP %d: %v", e.Status, e.Err)
	case e.Status != 0:
		fmt.Fprintf(&b, "HTTP %d", e.Status)
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	default:
		b.WriteString("failed")
	}
	if e.PossiblyCharged {
		b.WriteString(" (possibly charged)")
	}
	return b.String()
}

// Unwrap returns Err.
func (e *TransportError) Unwrap() error { return e.Err }

// GoString keeps %#v to the error's text: the cause chain is never dumped
// field by field.
func (e *TransportError) GoString() string {
	return fmt.Sprintf("&provider.TransportError{Endpoint:%q, Status:%d, PossiblyCharged:%t, Err:%q}",
		e.Endpoint, e.Status, e.PossiblyCharged, errString(e.Err))
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// redactedError replaces the text of an error that would contain the key,
// keeping the chain for errors.Is/As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string    { return e.msg }
func (e *redactedError) Unwrap() error    { return e.err }
func (e *redactedError) GoString() string { return fmt.Sprintf("%q", e.msg) }
