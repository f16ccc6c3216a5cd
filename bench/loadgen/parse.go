package main

import "strconv"

// The fake provider (bench/fake_provider.py) writes every text chunk as `<seq>@<send time_ns>|`,
// and starts the first chunk of each response with `R<arrival time_ns of the request>|`. The server
// may merge several chunks into one TextDelta, but never splits one, so every delta is a run of
// complete `|`-terminated tokens.

// token is one parsed piece of a delta: a request-arrival marker (R) or a chunk (seq, sent).
type token struct {
	arrival bool  // an `R<ns>|` token: a response starts; ns is when its request reached the provider
	seq     int   // the chunk's sequence number within its response (chunks only)
	ns      int64 // the R token's arrival time, or the chunk's send time
}

// parseDelta appends the tokens of one delta's text to out. malformed counts the pieces that are
// neither kind, including a trailing piece without its closing `|` (which the server never sends).
func parseDelta(text string, out []token) (tokens []token, malformed int) {
	for len(text) > 0 {
		end := 0
		for end < len(text) && text[end] != '|' {
			end++
		}
		if end == len(text) { // no closing `|`: a partial token
			return out, malformed + 1
		}
		piece := text[:end]
		text = text[end+1:]
		if piece == "" {
			continue
		}
		if t, ok := parseToken(piece); ok {
			out = append(out, t)
		} else {
			malformed++
		}
	}
	return out, malformed
}

func parseToken(piece string) (token, bool) {
	if piece[0] == 'R' {
		ns, err := strconv.ParseInt(piece[1:], 10, 64)
		return token{arrival: true, ns: ns}, err == nil
	}
	for at := 0; at < len(piece); at++ {
		if piece[at] != '@' {
			continue
		}
		seq, err1 := strconv.Atoi(piece[:at])
		ns, err2 := strconv.ParseInt(piece[at+1:], 10, 64)
		return token{seq: seq, ns: ns}, err1 == nil && err2 == nil
	}
	return token{}, false
}
