package jsonc

import (
	"encoding/binary"
	"time"
)

// parseUTC parses the common form "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (with its quotes) at the
// start of b exactly as time.Time.UnmarshalJSON does, and returns the time and the length of
// the string; n is 0 for any other input, which the caller then gives to UnmarshalJSON.
func parseUTC(b []byte) (t time.Time, n int) {
	const short = len(`"2006-01-02T15:04:05Z"`)
	if len(b) < short || b[0] != '"' {
		return time.Time{}, 0
	}
	s := b[1:20]
	if s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, 0
	}
	year, ok1 := digits4(s[0:4])
	month, ok2 := digits2(s[5:7], 1, 12)
	hour, ok3 := digits2(s[11:13], 0, 23)
	minute, ok4 := digits2(s[14:16], 0, 59)
	sec, ok5 := digits2(s[17:19], 0, 59)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return time.Time{}, 0
	}
	day, ok := digits2(s[8:10], 1, daysIn(month, year))
	if !ok {
		return time.Time{}, 0
	}
	nsec, n := fraction(b, 20)
	if n < 0 || n+1 >= len(b) || b[n] != 'Z' || b[n+1] != '"' {
		return time.Time{}, 0
	}
	unix := daysSinceEpoch(year, month, day)*86400 + int64(hour*3600+minute*60+sec)
	return time.Unix(unix, int64(nsec)).UTC(), n + 2
}

// fraction parses the optional fraction of a second ".ddd" (1 to 9 digits) at b[p:] and
// returns it in nanoseconds with the position after it, or -1 if it is malformed.
func fraction(b []byte, p int) (nsec, end int) {
	if p >= len(b) || b[p] != '.' {
		return 0, p
	}
	p++
	start := p
	if p+8 <= len(b) {
		if n, ok := eightDigits(b[p : p+8]); ok {
			nsec, p = n, p+8
		}
	}
	for ; p < len(b) && isDigit(b[p]); p++ {
		if p-start == 9 {
			return 0, -1
		}
		nsec = nsec*10 + int(b[p]-'0')
	}
	if p == start {
		return 0, -1
	}
	for range 9 - (p - start) {
		nsec *= 10
	}
	return nsec, p
}

// eightDigits parses 8 decimal digits at once, as simdjson does: it checks that every byte
// is a digit, then adds pairs of digits, pairs of pairs and pairs of quadruples.
func eightDigits(s []byte) (int, bool) {
	x := binary.LittleEndian.Uint64(s)
	const nibbles, threes = 0xf0f0f0f0f0f0f0f0, 0x3030303030303030
	if x&nibbles != threes || (x+0x0606060606060606)&nibbles != threes {
		return 0, false
	}
	x = (x & 0x0f0f0f0f0f0f0f0f) * (10<<8 + 1) >> 8
	x = (x & 0x00ff00ff00ff00ff) * (100<<16 + 1) >> 16
	x = (x & 0x0000ffff0000ffff) * (10000<<32 + 1) >> 32
	return int(x), true
}

// digits2 parses two decimal digits as a number in [lo,hi].
func digits2(s []byte, lo, hi int) (int, bool) {
	a, b := int(s[0])-'0', int(s[1])-'0'
	n := a*10 + b
	return n, uint(a) <= 9 && uint(b) <= 9 && lo <= n && n <= hi
}

// digits4 parses four decimal digits.
func digits4(s []byte) (int, bool) {
	hi, ok1 := digits2(s[0:2], 0, 99)
	lo, ok2 := digits2(s[2:4], 0, 99)
	return hi*100 + lo, ok1 && ok2
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysSinceEpoch returns the number of days from 1970-01-01 to the given date of the
// proleptic Gregorian calendar, for years 0 to 9999 (H. Hinnant's days_from_civil).
func daysSinceEpoch(year, month, day int) int64 {
	y := year + 400 // one era later, so that y-1 below stays positive for year 0
	if month <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	doy := (153*((month+9)%12)+2)/5 + day - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era*146097+doe) - 719468 - 146097
}
