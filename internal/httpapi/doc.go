// Package httpapi is Herald's /v1 HTTP API: routing, authentication (app
// keys with scopes, the admin token, browser tokens), body limits, per-app
// limits, and the JSON error envelope. It turns requests into calls on its
// dependencies and maps their errors to statuses in one place, writeError.
//
// # Dependencies
//
// Config holds each dependency as a small interface declared here, with
// only the methods the API calls: Publisher, TopicService and AppService
// (pubsub.Service), AppGetter (the store), StreamServer (sse.Handler),
// KeyVerifier and TokenSigner (auth), TriggerManager (webhook.Triggers),
// StatsRecorder (stats.Recorder) and AppLimiter (limit.Apps). The
// composition root, package server, passes the concrete types; the
// package's own tests pass the same real parts over a SQLite file and
// stand a fake in front of one only to inject a fault (a store that is
// down, a handler that panics). Optional dependencies are absent when the
// interface is nil, never when it holds a nil pointer.
//
// # Authentication
//
// A credential comes from the Authorization header (Bearer); on the event
// streams, which EventSource opens without headers, also from
// ?access_token= and then the TokenCookie. Each route is one of:
//
//   - admin (app management): the admin token only. A valid app key or
//     browser token gets 403, anything else 401.
//   - scoped (the routes under /v1/apps/{app}/, but streams): the admin
//     token, for an app that exists, or a key of the path's app holding
//     the route's scope. A key of another app, a key without the scope,
//     and a browser token get 403.
//   - streaming (…/events): what scoped admits for the subscribe scope, and
//     a browser token of the path's app from any of the three places; the
//     handler checks the token's topics. The admin token is refused in
//     ?access_token= (admin_token_in_url): URLs end up in logs. The cookie
//     carries browser tokens only.
//
// Every 401 carries a WWW-Authenticate challenge, with error="invalid_token"
// when a browser token was presented and is invalid or expired.
//
// # Errors
//
// Every error answer is {"error":{"code","message"}} (with "index" for the
// message of a batch that caused it), written by writeError from the
// dependencies' sentinels: store.ErrNotFound 404, pubsub.ErrInvalid 400,
// store.ErrUnavailable and ErrFull 503 unavailable with Retry-After,
// store.ErrCommitUnknown 503 commit_unknown, a *limit.Refused 429, and so on.
// Anything unknown, a handler's panic included, is 500 internal with a
// generic message and one log line; the server goes on serving.
package httpapi
