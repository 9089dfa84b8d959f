vcl 4.1;
# The CDN stand-in: caches what the origin says (Cache-Control/ETag), revalidates with
# If-None-Match, never caches errors, and purges by the origin's Surrogate-Key (the source tag):
#   curl -X PURGE -H "Surrogate-Key: <tag>" http://varnish/   (from an allowed address)
backend imgproxy {
    .host = "imgproxy";  # the Compose service; the drill substitutes its balancer
    .port = "8080";
    .connect_timeout = 2s;
    .first_byte_timeout = 15s;
    .probe = { .url = "/health"; .interval = 5s; .timeout = 2s; .window = 3; .threshold = 2; }
}

acl purgers { "127.0.0.1"; "::1"; "10.0.0.0"/8; "172.16.0.0"/12; "192.168.0.0"/16; }

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) { return (synth(403, "Forbidden")); }
        if (req.http.Surrogate-Key) {
            ban("obj.http.Surrogate-Key == " + req.http.Surrogate-Key);
            return (synth(200, "Banned"));
        }
        return (purge);
    }
    # The origin's admin endpoint (POST /_admin/purge) is for the operators' network, not the public.
    if (req.url ~ "^/_admin/" && client.ip !~ purgers) { return (synth(404, "Not Found")); }
    if (req.method != "GET" && req.method != "HEAD") { return (pass); }
    # The origin ignores the query string; so does the cache key.
    set req.url = regsub(req.url, "\?.*$", "");
    # With IMGPROXY_AUTO_WEBP/AVIF the origin varies on Accept: normalise it to a few classes.
    if (req.http.Accept ~ "image/avif") { set req.http.Accept = "image/avif,image/webp"; }
    elsif (req.http.Accept ~ "image/webp") { set req.http.Accept = "image/webp"; }
    else { unset req.http.Accept; }
    unset req.http.Cookie;
    return (hash);
}

sub vcl_backend_response {
    if (beresp.status >= 400) {
        set beresp.uncacheable = true;
        set beresp.ttl = 0s;
        return (deliver);
    }
    # Serve stale for a day if the origin is down (grace), like its own stale-if-error.
    set beresp.grace = 24h;
}

sub vcl_deliver {
    if (obj.hits > 0) { set resp.http.X-CDN = "HIT"; } else { set resp.http.X-CDN = "MISS"; }
}
