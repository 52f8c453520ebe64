// Package protocol is the server side of the CaptchaAI / 2captcha in.php +
// res.php API, for any server that speaks it: the simulator
// (provider/providersim) and the gateway in front of the engine. A server
// implements Backend; a Handler does everything the protocol fixes.
//
// # Basics
//
// NewHandler(backend, nil) is an http.Handler serving in.php and res.php
// under any path prefix. For each request it:
//
//   - parses it as the provider does (Parse): the query, a urlencoded or
//     multipart body, a JSON body sent as application/json or as
//     text/plain, merged with the body winning, so that the official
//     JavaScript client (everything in a JSON body), the community
//     `2captcha` client (key and method in the query, {"body": ...} as
//     text/plain) and form posts all work;
//   - answers CORS preflights (OPTIONS) and, with header_acao=1, sets
//     Access-Control-Allow-Origin: * on the answer, so browser clients can
//     use the server;
//   - calls Backend.Admit (bans, rate windows), answers a malformed body or
//     key, calls Backend.Authenticate (unknown keys, the caller's name);
//   - on in.php, checks the task as the provider does (Check:
//     ERROR_NO_SUCH_METHOD, ERROR_PAGEURL, image sizes, ...) and calls
//     Backend.Submit; on res.php, dispatches action=get (id= or ids=),
//     get2, getbalance, reportgood, reportbad, add_pingback, get_pingback
//     and del_pingback;
//   - renders the answer as plain text ("OK|…", a code) or, with json=1,
//     as {"status":1,"request":…} / {"status":0,"request":"CODE","error_text":"…"}.
//
// A backend returns *Error values for the provider's codes; any other
// error is answered ERROR_INTERNAL_SERVER_ERROR without its text.
//
// # Caveats
//
// Ids are numbers, as the provider's are (clients parse them as numbers):
// a malformed id is ERROR_WRONG_ID_FORMAT before the Backend is asked.
// Parse bounds the body it reads (Options.MaxBody); Check bounds each
// parameter with provider.MaxValue. A structured answer (GeeTest) has a
// plain-text form (Result.Token) and a JSON form (Result.JSON); batched
// answers use the JSON form when json=1, so a client sees one shape per
// format. error_text is sent in JSON answers only.
package protocol
