//! HTTP bodies, both ways. The server's handlers: `POST /v1/register` and `/v1/login`
//! (credentials, checked), `POST /v1/invites` and `POST /v1/guest` (optional JSON bodies). The
//! client: a response body read as each response type (or as the server's error), for a
//! success and an error status (hyper parses the response head).
#![no_main]

use dyad_proto::http::{CallRecord, GuestSession, IceConfig, Invite, InviteRequest, Session};
use dyad_server::http::{parse_credentials, parse_json, GuestBody};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let _ = parse_credentials(body);
    let _ = parse_json::<InviteRequest>(body);
    let _ = parse_json::<GuestBody>(body);

    use dyad_call::signal::json_or_error;
    for status in [200, 400] {
        let _ = json_or_error::<Session>(status, body);
        let _ = json_or_error::<IceConfig>(status, body);
        let _ = json_or_error::<Vec<CallRecord>>(status, body);
        let _ = json_or_error::<Invite>(status, body);
        let _ = json_or_error::<GuestSession>(status, body);
    }
});
