package redisclient

import "testing"

func TestSlot(t *testing.T) {
	for _, c := range []struct {
		key  string
		want int
	}{
		{"foo", 12182},        // Redis documents CLUSTER KEYSLOT foo = 12182
		{"123456789", 0x31C3}, // CRC16/XMODEM check value
		{"{foo}.bar", 12182},  // the hash tag alone
		{"a{foo}b{bar}", 12182},
	} {
		t.Run(c.key, func(t *testing.T) {
			if got := Slot(c.key); got != c.want {
				t.Errorf("Slot(%q) = %d, want %d", c.key, got, c.want)
			}
		})
	}
	if Slot("x{}y") == Slot("") {
		t.Error("an empty hash tag must not be used as the tag")
	}
}
