package metrics

import (
	"context"
	"errors"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/transitions"
)

// Outcomes of a request, the values of requests_total's outcome label.
const (
	// OutcomeOK: the API answered without a request-wide code (a Poll's
	// per-task codes are counted as answers).
	OutcomeOK = "ok"
	// OutcomeAPIError: the API answered the whole request with a code.
	OutcomeAPIError = "api_error"
	// OutcomeTransportError: no API answer (connection, timeout, HTTP
	// status, a body that is not an answer).
	OutcomeTransportError = "transport_error"
	// OutcomeInvalid: the request was refused before it was sent.
	OutcomeInvalid = "invalid"
	// OutcomeError: any other error (a cancelled context, for example).
	OutcomeError = "error"
)

// CodeOK labels a successful answer in api_answers_total; CodeOther labels
// a code the catalogue does not hold, which keeps the label's values
// bounded whatever a provider answers.
const (
	CodeOK    = "OK"
	CodeOther = "other"
)

// ClassOK is the class label of a successful answer (the catalogue's
// classes label codes).
const ClassOK = "ok"

// InstrumentAPI returns api wrapped so that every request is counted in
// requests_total, every answer in api_answers_total (each answer of a
// batched poll separately) and every ban code in ban_waits_total. Give the
// result to engine.Config.API. The result also implements
// engine.CostAPI, engine.BalanceAPI and engine.ReportAPI (their get2,
// getbalance and report requests count as res.php); for a request api
// does not support it returns an error wrapping engine.ErrUnsupported.
func (m *Metrics) InstrumentAPI(api engine.API) engine.API {
	return &instrumented{m: m, api: api}
}

type instrumented struct {
	m   *Metrics
	api engine.API
}

var _ engine.API = (*instrumented)(nil)

// Submit counts one in.php request and its answer.
func (a *instrumented) Submit(ctx context.Context, req provider.Request) (string, error) {
	id, err := a.api.Submit(ctx, req)
	a.m.request(provider.EndpointIn, err)
	return id, err
}

// Poll counts one res.php request and each of its answers.
func (a *instrumented) Poll(ctx context.Context, ids []string) ([]provider.Answer, error) {
	answers, err := a.api.Poll(ctx, ids)
	if err != nil {
		a.m.request(provider.EndpointRes, err)
		return answers, err
	}
	a.m.requests.WithLabelValues(provider.EndpointRes, OutcomeOK).Inc()
	for _, ans := range answers {
		if ans.Token != "" {
			a.m.answer(provider.EndpointRes, CodeOK, ClassOK)
			continue
		}
		a.m.code(provider.EndpointRes, ans.Code)
	}
	return answers, nil
}

var (
	_ engine.CostAPI    = (*instrumented)(nil)
	_ engine.BalanceAPI = (*instrumented)(nil)
	_ engine.ReportAPI  = (*instrumented)(nil)
)

// Cost counts one res.php (get2) request and its answer.
func (a *instrumented) Cost(ctx context.Context, id string) (string, string, error) {
	c, ok := a.api.(engine.CostAPI)
	if !ok {
		return "", "", engine.ErrUnsupported
	}
	tok, cost, err := c.Cost(ctx, id)
	a.m.request(provider.EndpointRes, err)
	return tok, cost, err
}

// Balance counts one res.php (getbalance) request and its answer.
func (a *instrumented) Balance(ctx context.Context) (string, error) {
	b, ok := a.api.(engine.BalanceAPI)
	if !ok {
		return "", engine.ErrUnsupported
	}
	v, err := b.Balance(ctx)
	a.m.request(provider.EndpointRes, err)
	return v, err
}

// Report counts one res.php (reportgood/reportbad) request and its answer.
func (a *instrumented) Report(ctx context.Context, id string, good bool) error {
	r, ok := a.api.(engine.ReportAPI)
	if !ok {
		return engine.ErrUnsupported
	}
	err := r.Report(ctx, id, good)
	a.m.request(provider.EndpointRes, err)
	return err
}

// request counts a request with a single answer (or none).
func (m *Metrics) request(endpoint string, err error) {
	var apiErr *provider.APIError
	var te *provider.TransportError
	switch {
	case err == nil:
		m.requests.WithLabelValues(endpoint, OutcomeOK).Inc()
		m.answer(endpoint, CodeOK, ClassOK)
	case errors.As(err, &apiErr):
		m.requests.WithLabelValues(endpoint, OutcomeAPIError).Inc()
		m.code(endpoint, apiErr.Code)
	case errors.As(err, &te):
		m.requests.WithLabelValues(endpoint, OutcomeTransportError).Inc()
	case errors.Is(err, provider.ErrInvalid):
		m.requests.WithLabelValues(endpoint, OutcomeInvalid).Inc()
	default:
		m.requests.WithLabelValues(endpoint, OutcomeError).Inc()
	}
}

// code counts an answer that carries a code, and the ban it announces.
func (m *Metrics) code(endpoint, code string) {
	entry, known := transitions.Lookup(code)
	if !known {
		m.answer(endpoint, CodeOther, string(transitions.ClassUnknown))
		return
	}
	m.answer(endpoint, entry.Code, string(entry.Class))
	if entry.IsBan() {
		m.banWaits.WithLabelValues(entry.Code).Inc()
	}
}

func (m *Metrics) answer(endpoint, code, class string) {
	m.answers.WithLabelValues(endpoint, code, class).Inc()
}
