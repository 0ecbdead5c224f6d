package db_test

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/testenv"
)

// BenchmarkInsertMessageSearchCost measures what search costs a send: InsertMessage (the
// transaction behind sendMessage: the conversation's row lock, the message, its event) into
// two databases holding the same 100,000-message search corpus, one as migrated, the other
// without the generated messages.tsv (a plain column, always null) and the two indexes
// (messages_tsv_idx, messages_conversation_time_idx).
// Each iteration inserts one message of 4 to 24 Zipf-drawn words into both, in alternating
// order, so that whatever else runs on the machine weighs on both alike. It reports the median,
// 90th percentile and mean time of each (µs) and the median of the differences. Run it with
//
//	go test ./db/ -run XXX -bench InsertMessageSearchCost -benchtime 2000x
func BenchmarkInsertMessageSearchCost(b *testing.B) {
	ctx := context.Background()
	corpus := db.SearchCorpus{
		Name: "write", Conversations: 400, Messages: 250, Members: 6, ViewerOf: 40,
		Vocabulary: 20000, WordsMin: 4, WordsMax: 24, RandSeed: 0.5,
	}
	type side struct {
		store  *db.Store
		viewer int64   // the sender: a member of convs
		convs  []int64 // written to in turn
		took   []time.Duration
	}
	open := func(withSearch bool) *side {
		d := testenv.NewDatabase(b)
		pool := dbtest.Open(b, d.DirectURL)
		rep := dbtest.SearchCorpus(b, pool, corpus)
		if !withSearch {
			// Dropping the column drops messages_tsv_idx with it; a plain column of that name,
			// always null, lets the statements that name it run unchanged.
			if _, err := pool.Exec(ctx, `ALTER TABLE messages DROP COLUMN tsv; ALTER TABLE messages ADD COLUMN tsv tsvector;
				DROP INDEX messages_conversation_time_idx`); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := pool.Exec(ctx, "VACUUM ANALYZE messages"); err != nil {
			b.Fatal(err)
		}
		return &side{store: db.NewStore(pool), viewer: rep.Viewer, convs: rep.ViewerConversations}
	}
	with, without := open(true), open(false)
	rng := rand.New(rand.NewPCG(1, 2))
	body := func() string {
		words := make([]string, corpus.WordsMin+rng.IntN(corpus.WordsMax-corpus.WordsMin+1))
		for i := range words { // rank r with probability log((r+1)/r) / log(V+1), as the corpus
			words[i] = db.SearchWord(min(corpus.Vocabulary, int(math.Floor(math.Pow(float64(corpus.Vocabulary+1), rng.Float64())))))
		}
		return strings.Join(words, " ")
	}
	insert := func(s *side, i int, text string) {
		start := time.Now()
		if _, _, err := s.store.InsertMessage(ctx, chat.NewMessage{ConversationID: s.convs[i%len(s.convs)], SenderID: s.viewer, Body: text}); err != nil {
			b.Fatal(err)
		}
		s.took = append(s.took, time.Since(start))
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		text := body()
		first, second := with, without
		if i%2 == 1 {
			first, second = without, with
		}
		insert(first, i, text)
		insert(second, i, text)
	}
	b.StopTimer()
	diffs := make([]time.Duration, len(with.took))
	for i := range diffs {
		diffs[i] = with.took[i] - without.took[i]
	}
	b.ReportMetric(micros(quantile(with.took, 0.5)), "with-p50-µs")
	b.ReportMetric(micros(quantile(without.took, 0.5)), "without-p50-µs")
	b.ReportMetric(micros(quantile(with.took, 0.9)), "with-p90-µs")
	b.ReportMetric(micros(quantile(without.took, 0.9)), "without-p90-µs")
	b.ReportMetric(micros(mean(with.took)), "with-mean-µs")
	b.ReportMetric(micros(mean(without.took)), "without-mean-µs")
	b.ReportMetric(micros(quantile(diffs, 0.5)), "diff-p50-µs")
}

// quantile returns the q-quantile (0..1) of ds, nearest rank.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func mean(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
