// Package chatload generates the compression runs' workload: the JSON
// messages of the chat example (examples/chat), with varied, realistic
// text, never one string repeated.
//
// A chat line is the example's "said" broadcast,
//
//	{"type":"said","id":"…","from":"u-…","name":"…","text":"…","at":"…"}
//
// with the same members in the same order as json.Marshal writes them for
// the example's map (sorted keys): at, from, id, name, text, type. Its
// subject is one of 40 users ("u-" and 24 hex digits, as the example
// makes them), its name that user's display name, its id 12 hex digits
// (random: the example's is a digest), its time advancing by a few
// seconds a line, and its text 1 to 40 words drawn from about 400 common
// English and chat words with a Zipf distribution (a few words are
// frequent, most are rare), with capitals, punctuation, the odd number,
// emoji and link. A seeded generator makes every run's corpus the same.
package chatload

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Corpus is a fixed set of chat lines in the order they were "said".
type Corpus struct {
	Lines [][]byte
}

// New generates n chat lines from seed.
func New(n int, seed uint64) *Corpus {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	zipf := rand.NewZipf(r, 1.1, 2, uint64(len(vocabulary)-1))
	type user struct{ subject, name string }
	users := make([]user, 40)
	for i := range users {
		var b [12]byte
		for j := range b {
			b[j] = byte(r.UintN(256))
		}
		users[i] = user{"u-" + hex.EncodeToString(b[:]), names[i%len(names)]}
		if i >= len(names) {
			users[i].name += fmt.Sprintf(" %c.", 'A'+rune(r.IntN(26)))
		}
	}
	at := time.Date(2026, 3, 14, 9, 30, 0, 0, time.UTC)
	c := &Corpus{Lines: make([][]byte, n)}
	for i := range c.Lines {
		u := users[r.IntN(len(users))]
		var id [6]byte
		for j := range id {
			id[j] = byte(r.UintN(256))
		}
		at = at.Add(time.Duration(1+r.IntN(20)) * time.Second)
		b, err := json.Marshal(map[string]any{
			"type": "said", "id": hex.EncodeToString(id[:]), "from": u.subject, "name": u.name,
			"text": sentence(r, zipf), "at": at.Format(time.RFC3339),
		})
		if err != nil {
			panic(err)
		}
		c.Lines[i] = b
	}
	return c
}

// sentence is one chat line's text.
func sentence(r *rand.Rand, zipf *rand.Zipf) string {
	n := 1 + int(r.ExpFloat64()*9)
	n = min(n, 40)
	var sb strings.Builder
	for i := range n {
		w := vocabulary[zipf.Uint64()]
		switch x := r.IntN(100); {
		case x < 2:
			w = fmt.Sprint(r.IntN(2000))
		case x < 3:
			w = emoji[r.IntN(len(emoji))]
		case x < 4 && n > 4:
			w = fmt.Sprintf("https://example.com/%s/%d", vocabulary[zipf.Uint64()], r.IntN(100000))
		}
		if i == 0 || r.IntN(30) == 0 {
			w = strings.ToUpper(w[:1]) + w[1:]
		}
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(w)
		if i < n-1 && r.IntN(12) == 0 {
			sb.WriteByte(',')
		}
	}
	sb.WriteString([]string{"", "", ".", ".", "!", "?", "?", " :)", "..."}[r.IntN(9)])
	return sb.String()
}

// Messages returns count messages of about size bytes built from the
// corpus's lines in turn: a single line where size is below 400 (a chat
// line as the example broadcasts it, whatever its length), otherwise a
// JSON array of as many consecutive lines as fit in size bytes (a page
// of history), at least one.
func (c *Corpus) Messages(size, count int) [][]byte {
	out := make([][]byte, 0, count)
	k := 0
	next := func() []byte { l := c.Lines[k%len(c.Lines)]; k++; return l }
	for len(out) < count {
		if size < 400 {
			out = append(out, next())
			continue
		}
		var b bytes.Buffer
		b.WriteByte('[')
		for {
			l := c.Lines[k%len(c.Lines)]
			if b.Len() > 1 && b.Len()+1+len(l)+1 > size {
				break
			}
			if b.Len() > 1 {
				b.WriteByte(',')
			}
			b.Write(next())
		}
		b.WriteByte(']')
		out = append(out, b.Bytes())
	}
	return out
}

// MeanSize is the mean length of msgs in bytes.
func MeanSize(msgs [][]byte) float64 {
	n := 0
	for _, m := range msgs {
		n += len(m)
	}
	return float64(n) / float64(max(len(msgs), 1))
}

var names = []string{
	"Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy",
	"Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Zoë",
	"Amara", "Bjørn", "Chen Wei", "Dmitri", "Élodie", "Farah", "Giulia", "Hiro", "Ingrid", "José",
}

var emoji = []string{"😀", "👍", "🎉", "😂", "🙏", "🔥", "❤️", "🤔", "👀", "✅"}

// vocabulary is in rough order of frequency (the Zipf draw favours the
// front).
var vocabulary = strings.Fields(`
the I to you a and it is that of in for on this we be have are not with
just so but what do at can it's was me my if will all get up no yes like
know out about think one now there they how ok here go from your good
see time when then would or lol us more make some any yeah don't right
going need back today could want still did also thanks got did last new
them people work very been our should sure really well let's has much
meeting after week tomorrow thing day because over sounds great why which
only look where first something their who again other way into before
nice two try anyone too call later take done fine morning release build
test deploy branch merge review issue bug fix server client api token
login page update version check working broken looks already tonight
lunch coffee team ship monday friday weekend doc link file folder repo
config error log logs timeout latency queue cache database backup
restart staging prod production rollback alert dashboard metrics ticket
hey hi hello thanks! cool awesome nope maybe probably definitely agreed
exactly hmm wait oh ah ugh wow haha brb afk gtg btw imo tbh fyi asap
please sorry np ty thx welcome congrats happy birthday cheers night
seems weird strange odd slow fast faster slower huge small tiny big
everyone folks guys team all someone somebody nobody anybody mine yours
question answer idea plan design spec draft notes slides demo call zoom
minutes hour hours days weeks month year yesterday soon earlier late
early noon evening afternoon o'clock pm am start started finish finished
open opened close closed send sent read reading write writing wrote
push pushed pull pulled run running ran install installed upgrade
chart graph number numbers percent total average median spike drop
customer user users account password reset email phone message messages
channel room thread reply replied mention pinned emoji reaction typing
said says tell told ask asked help helped thought think feel looks seem
board card column sprint standup retro planning estimate points scope
`)
