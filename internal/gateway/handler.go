package gateway

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/captchafsm/captchafsm/provider/protocol"
)

// actions are res.php's actions as metrics name them; any other is
// "other".
var actions = map[string]bool{
	"get": true, "get2": true, "getbalance": true, "reportgood": true, "reportbad": true,
	"add_pingback": true, "get_pingback": true, "del_pingback": true,
}

// ServeHTTP serves in.php and res.php (under any path prefix; other paths
// get 404) as the provider does, for the clients of the keys file.
//
// It writes each answer itself so that it knows whether the answer
// reached a client still connected: an in.php answer lost with its
// client's connection is given to the client's identical retry (see
// Config.DedupWindow).
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, rep := g.handler.Parse(r)
	if rep != nil {
		rep.Write(w)
		return
	}
	dl := &delivery{}
	reply := g.handler.Serve(withDelivery(r.Context(), dl), req)
	delivered := r.Context().Err() == nil && write(w, reply) == nil && r.Context().Err() == nil
	if dl.a != nil {
		g.dedup.finish(dl.a, delivered)
		if !delivered {
			g.log.Info("in.php answer lost with the client's connection; an identical retry gets its id",
				"client", req.Client, "id", dl.a.id)
		}
	}

	client := req.Client
	if client == "" {
		client = "-"
	}
	request := protocol.EndpointIn
	if req.Endpoint == protocol.EndpointRes {
		request = req.Action
		if !actions[request] {
			request = "other"
		}
	}
	for _, c := range reply.Codes {
		g.obs.Answered(client, request, c)
	}
	if g.log.Enabled(r.Context(), slog.LevelDebug) {
		g.log.Debug("answered", "client", client, "request", request, "codes", reply.Codes, "delivered", delivered)
	}
}

// write sends rep and flushes it, so that a connection the client closed
// shows as an error.
func write(w http.ResponseWriter, rep protocol.Reply) error {
	h := w.Header()
	for k, v := range rep.Header {
		h[k] = v
	}
	h.Set("Content-Length", strconv.Itoa(len(rep.Body)))
	w.WriteHeader(rep.Status)
	if _, err := w.Write(rep.Body); err != nil {
		return err
	}
	if err := http.NewResponseController(w).Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}
