package cache_test

import (
	"testing"

	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/internal/testenv"
)

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.Options{Migrate: db.Migrate})
}
